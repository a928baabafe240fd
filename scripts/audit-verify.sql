-- Recomputes the audit_log hash chain in seq order and reports the first row that does not fit:
-- the reference for `kuzet audit verify`. Read-only; trusts no function of the schema (whoever
-- can forge rows can replace those): the canonical text is spelled out here, and sha256() is
-- PostgreSQL's built-in one (pg_catalog).
--
--   psql -X -v ON_ERROR_STOP=1 "$DATABASE_URL" -f scripts/audit-verify.sql
--
-- One row: rows (how many rows the log holds), first_break (seq of the first bad row, NULL if
-- the chain is intact) and reason. A row is checked for, in this order:
--   gap          seq is not the previous row's seq + 1 (1 for the first row): rows removed,
--                or inserted out of order;
--   broken_link  prev_hash is not the previous row's hash (32 zero bytes for the first row):
--                the row before it was rehashed, removed or replaced;
--   edited       hash is not sha256(prev_hash || convert_to(canonical, 'UTF8')): the row's
--                content (or hash) was changed;
--   ambiguous    actor, action or subject contains '|', so its canonical text could split
--                into fields in more than one way (the table's CHECKs forbid it).
-- If every row fits, the last row is compared with audit_head (the last seq and hash the insert
-- trigger appended): tail_removed (first_break = the first seq missing) if the seqs differ,
-- tail_rehashed (first_break = the last row) if only the hashes do.
WITH chain AS (
    SELECT seq, actor, action, subject, prev_hash, hash,
           sha256(prev_hash || convert_to(
                      seq::text
               || '|' || to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
               || '|' || actor
               || '|' || action
               || '|' || coalesce(subject, '')
               || '|' || details::text,
               'UTF8')) AS recomputed,
           coalesce(lag(seq) OVER w + 1, 1) AS expected_seq,
           coalesce(lag(hash) OVER w, decode(repeat('00', 32), 'hex')) AS expected_prev,
           row_number() OVER w = count(*) OVER () AS is_last
    FROM audit_log
    WINDOW w AS (ORDER BY seq)
),
checked AS (
    SELECT seq,
           CASE
               WHEN seq <> expected_seq THEN
                   format('gap: expected seq %s, found %s (rows removed or out of order)', expected_seq, seq)
               WHEN prev_hash IS DISTINCT FROM expected_prev THEN
                   'broken_link: prev_hash is not the previous row''s hash (that row was rehashed, removed or replaced)'
               WHEN hash IS DISTINCT FROM recomputed THEN
                   'edited: the row''s content does not match its hash'
               WHEN strpos(actor, '|') > 0 OR strpos(action, '|') > 0 OR strpos(coalesce(subject, ''), '|') > 0 THEN
                   'ambiguous: actor, action or subject contains ''|'''
           END AS reason,
           is_last, hash
    FROM chain
),
first_break AS (
    SELECT seq, reason FROM checked WHERE reason IS NOT NULL ORDER BY seq LIMIT 1
),
tail AS (
    SELECT CASE
               WHEN h.seq IS NULL THEN coalesce(c.seq, 0)
               -- Rows missing after the last one (or rows beyond what the trigger appended):
               -- the first seq where the log and its head part.
               WHEN h.seq <> coalesce(c.seq, 0) THEN least(h.seq, coalesce(c.seq, 0)) + 1
               -- Same last seq, another hash: the last row was rehashed.
               ELSE coalesce(c.seq, 0)
           END AS seq,
           CASE
               WHEN h.seq IS NULL THEN 'tail: audit_head has no row'
               WHEN h.seq <> coalesce(c.seq, 0) THEN
                   format('tail_removed: audit_head says the last row is seq %s, the log ends at seq %s',
                          h.seq, coalesce(c.seq, 0))
               WHEN h.hash <> coalesce(c.hash, decode(repeat('00', 32), 'hex')) THEN
                   'tail_rehashed: the last row''s hash is not the one audit_head recorded (edited and rehashed)'
           END AS reason
    FROM (SELECT 1) one
    LEFT JOIN (SELECT seq, hash FROM checked WHERE is_last) c ON true
    LEFT JOIN audit_head h ON true
)
SELECT (SELECT count(*) FROM audit_log) AS rows,
       coalesce(b.seq, CASE WHEN t.reason IS NOT NULL THEN t.seq END) AS first_break,
       coalesce(b.reason, t.reason, 'intact') AS reason
FROM tail t
LEFT JOIN first_break b ON true;

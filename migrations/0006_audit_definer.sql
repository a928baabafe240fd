-- kuzet: the audit chain's insert trigger runs as the schema's owner, so the role kuzet serves
-- with needs only INSERT on audit_log and no privilege at all on audit_head (which it could
-- otherwise move by hand). Its search_path is pinned to this schema with pg_temp last: a
-- temporary table named audit_head cannot stand in for the real one.
DO $$
BEGIN
    EXECUTE format('ALTER FUNCTION audit_log_chain() SECURITY DEFINER SET search_path = %I, pg_temp',
                   current_schema());
END
$$;
REVOKE ALL ON audit_log, audit_head FROM PUBLIC;

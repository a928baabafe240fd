-- kuzet: a high-danger watchlist entry dispatches armed units on a match without a person's
-- review, so it takes a second person's approval. Until then it matches as medium (every match
-- goes to a dispatcher's review). Re-enrolling an entry clears its approval.
ALTER TABLE watchlist ADD COLUMN IF NOT EXISTS approved_by text;
ALTER TABLE watchlist ADD COLUMN IF NOT EXISTS approved_at timestamptz;
ALTER TABLE watchlist DROP CONSTRAINT IF EXISTS watchlist_approved_by_other;
ALTER TABLE watchlist ADD CONSTRAINT watchlist_approved_by_other
    CHECK (approved_by IS NULL OR approved_by <> enrolled_by);

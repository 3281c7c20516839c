-- The audit trail of `runner adopt`: one row per row it changed (or added) while resolving data that broke
-- the project's rules, with the row before and after as JSONB, so every resolution can be read and undone
-- (docs/adopting.md). A row of an adopted table with no line here is unchanged in every column it had.
-- Empty on a database `runner apply` built. IF NOT EXISTS: `runner adopt` runs this same file before its
-- resolutions, and `runner apply` records it afterwards.
{% import "macros/common.sql" as m %}
CREATE TABLE IF NOT EXISTS {{ m.q("runner_adoption_log") }} (
  id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  table_name  TEXT NOT NULL,
  row_id      TEXT NOT NULL,
  rule        TEXT NOT NULL,
  before      JSONB,
  after       JSONB,
  changed_at  TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now(),
  changed_by  TEXT NOT NULL DEFAULT current_user
);

CREATE INDEX IF NOT EXISTS idx_runner_adoption_log_row ON {{ m.q("runner_adoption_log") }} (table_name, row_id);
CREATE INDEX IF NOT EXISTS idx_runner_adoption_log_rule ON {{ m.q("runner_adoption_log") }} (rule, changed_at);

COMMENT ON TABLE {{ m.q("runner_adoption_log") }} IS
  'Rows changed by `runner adopt` (before and after images, the rule applied); see docs/adopting.md.';
COMMENT ON COLUMN {{ m.q("runner_adoption_log") }}.before IS
  'The whole row before the change (NULL: the row was added, e.g. a plan or a user the data referred to).';

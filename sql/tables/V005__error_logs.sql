-- Errors worth a support engineer's look (the reference's error_logs), by category.
{% import "macros/common.sql" as m %}
CREATE TABLE {{ m.q("error_logs") }} (
  id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  category   VARCHAR(50) NOT NULL,
  message    TEXT NOT NULL,
  context    JSONB NOT NULL DEFAULT '{}'::jsonb,
  created_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now()
);

CREATE INDEX idx_error_logs_category_created ON {{ m.q("error_logs") }} (category, created_at DESC);

COMMENT ON TABLE {{ m.q("error_logs") }} IS
  'Errors by category (database, stripe, webhook, email, ...), newest last.';

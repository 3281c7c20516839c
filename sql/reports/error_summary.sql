-- report: error_summary
-- description: error_logs of the last N days by category: how many, when last, the last message (the reference's "Check database logs").
-- param: days integer default 30 min 1 max 3650 -- errors logged in the last N days
-- param: category text default none -- only this category (database, stripe, webhook, email, ...)
{% import "macros/common.sql" as m %}
WITH per_category AS (
  SELECT category, count(*) AS errors, max(created_at) AS last_seen
    FROM {{ m.q("error_logs") }}
   WHERE created_at > now() - make_interval(days => %(days)s::integer)
     AND (%(category)s::text IS NULL OR category = %(category)s::text)
   GROUP BY category
)
SELECT c.category, c.errors, c.last_seen,
       (SELECT e.message FROM {{ m.q("error_logs") }} e
         WHERE e.category = c.category ORDER BY e.created_at DESC, e.id DESC LIMIT 1) AS last_message
  FROM per_category c
 ORDER BY c.errors DESC, c.category;

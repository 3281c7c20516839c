-- report: webhook_outcomes
-- description: Stripe events received in the last N hours by outcome (processed, ignored, failed, rejected, still received), with the oldest unprocessed one's age.
-- param: hours integer default 24 min 1 max 8760 -- events received in the last N hours
{% import "macros/common.sql" as m %}
WITH outcomes (position, status) AS (
  VALUES (1, 'received'), (2, 'processed'), (3, 'ignored'), (4, 'failed'), (5, 'rejected')
), counted AS (
  SELECT status, count(*) AS events
    FROM {{ m.q("webhook_events") }}
   WHERE created_at > now() - make_interval(hours => %(hours)s::integer)
   GROUP BY status
)
SELECT o.status,
       coalesce(c.events, 0) AS events,
       CASE WHEN o.status = 'received' THEN
         (SELECT round(EXTRACT(EPOCH FROM now() - min(e.created_at)) / 60, 1)
            FROM {{ m.q("webhook_events") }} e WHERE e.status = 'received')
       END AS oldest_minutes
  FROM outcomes o LEFT JOIN counted c USING (status)
 ORDER BY o.position;

-- report: webhook_outcomes
-- description: Stripe events received in the last N hours by outcome (processed, ignored, failed, rejected, still received), with the oldest unprocessed one's age.
-- param: hours integer default 24 min 1 max 8760 -- events received in the last N hours
{% import "macros/common.sql" as m %}
WITH outcomes (status) AS (
  VALUES ('received'), ('processed'), ('ignored'), ('failed'), ('rejected')
)
SELECT o.status,
       (SELECT count(*) FROM {{ m.q("webhook_events") }} e
         WHERE e.status = o.status AND e.created_at > now() - make_interval(hours => %(hours)s::integer)) AS events,
       (SELECT round(EXTRACT(EPOCH FROM now() - min(e.created_at)) / 60, 1) FROM {{ m.q("webhook_events") }} e
         WHERE e.status = o.status AND o.status = 'received') AS oldest_minutes
  FROM outcomes o
 ORDER BY array_position(ARRAY['received', 'processed', 'ignored', 'failed', 'rejected'], o.status);

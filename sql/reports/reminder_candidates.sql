-- report: reminder_candidates
-- description: Pending checkouts old enough for a reminder email (the reference's "Find users who need reminders"; its 6-hourly cron with min_age=6 hours max_age=24 hours).
-- param: min_age interval default 1 hour -- created at least this long ago
-- param: max_age interval default none -- and at most this long ago (default: no limit)
-- param: max_attempts integer default 3 min 1 max 1000 -- only sessions with fewer attempts than this
-- param: limit integer default 1000 min 1 max 100000 -- at most this many rows, oldest first
{% import "macros/common.sql" as m %}
SELECT user_id, email, subscription_plan, created_at, attempts
  FROM {{ m.q("payment_checkout_sessions") }}
 WHERE status = 'pending'
   AND created_at < now() - %(min_age)s::interval
   AND (%(max_age)s::interval IS NULL OR created_at > now() - %(max_age)s::interval)
   AND attempts < %(max_attempts)s::integer
 ORDER BY created_at, id
 LIMIT %(limit)s::integer;

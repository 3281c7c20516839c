-- Every SQL block of checkout-sessions-summary.md (beside this file) except its CREATE TABLE, verbatim: the
-- one copy the tests (tests/sql/test_reference_queries.py runs each statement; tests/reporting/test_reports.py
-- compares the reports with them) and the benchmarks (bench/bench_reports.py) read, through bench/reference.py.

-- Conversion rate
SELECT 
  COUNT(CASE WHEN status = 'completed' THEN 1 END) * 100.0 / COUNT(*) as conversion_rate
FROM payment_checkout_sessions
WHERE created_at > NOW() - INTERVAL '30 days';

-- Abandonment by plan
SELECT 
  subscription_plan,
  COUNT(*) as total,
  COUNT(CASE WHEN status = 'pending' THEN 1 END) as abandoned
FROM payment_checkout_sessions
GROUP BY subscription_plan;

-- Find users who need reminders
SELECT user_id, email, subscription_plan, created_at
FROM payment_checkout_sessions
WHERE status = 'pending'
  AND created_at < NOW() - INTERVAL '1 hour'
  AND attempts < 3;

-- Check table exists
SELECT * FROM payment_checkout_sessions LIMIT 1;

-- Test functions
SELECT expire_old_checkout_sessions();

-- Sessions created today
SELECT COUNT(*) FROM payment_checkout_sessions 
WHERE created_at > CURRENT_DATE;

-- Completion rate today
SELECT 
  COUNT(CASE WHEN status = 'completed' THEN 1 END) * 100.0 / COUNT(*) as rate
FROM payment_checkout_sessions 
WHERE created_at > CURRENT_DATE;

-- Pending sessions older than 1 hour
SELECT COUNT(*) FROM payment_checkout_sessions
WHERE status = 'pending' 
  AND created_at < NOW() - INTERVAL '1 hour';

SELECT 
  DATE(created_at) as date,
  COUNT(*) as total_sessions,
  COUNT(CASE WHEN status = 'completed' THEN 1 END) as completed,
  COUNT(CASE WHEN status = 'pending' THEN 1 END) as pending,
  COUNT(CASE WHEN status = 'expired' THEN 1 END) as expired,
  ROUND(COUNT(CASE WHEN status = 'completed' THEN 1 END) * 100.0 / COUNT(*), 2) as conversion_rate
FROM payment_checkout_sessions
WHERE created_at > NOW() - INTERVAL '7 days'
GROUP BY DATE(created_at)
ORDER BY date DESC;

SELECT expire_old_checkout_sessions();

SELECT user_id, email, subscription_plan
FROM payment_checkout_sessions
WHERE status = 'pending'
  AND created_at < NOW() - INTERVAL '6 hours'
  AND created_at > NOW() - INTERVAL '24 hours'
  AND attempts < 3;

DELETE FROM payment_checkout_sessions
WHERE status = 'completed'
  AND completed_at < NOW() - INTERVAL '90 days';

-- Verify user exists
SELECT * FROM users WHERE id = 'user-uuid';

-- Check function exists
SELECT proname FROM pg_proc WHERE proname = 'get_or_create_checkout_session';

-- Find pending sessions with Stripe ID
SELECT * FROM payment_checkout_sessions
WHERE stripe_session_id IS NOT NULL
  AND status = 'pending';

-- Check webhook logs
SELECT * FROM webhook_events
WHERE topic = 'checkout.session.completed'
ORDER BY created_at DESC
LIMIT 10;

-- Sessions by status
SELECT status, COUNT(*) 
FROM payment_checkout_sessions
WHERE created_at > NOW() - INTERVAL '7 days'
GROUP BY status;

-- Average time before abandonment
SELECT 
  AVG(EXTRACT(EPOCH FROM (NOW() - created_at)) / 60) as avg_minutes
FROM payment_checkout_sessions
WHERE status = 'pending'
  AND created_at > NOW() - INTERVAL '7 days';

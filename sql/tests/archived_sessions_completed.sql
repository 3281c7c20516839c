-- Archived sessions are completed ones with their completed_at: statuses move forward only, in the archive too
{#- The cleanup job (archive_completed_checkout_sessions) moves only completed sessions there; anything
    else in the archive was put there by hand or changed afterwards. -#}
{% import "macros/common.sql" as m %}
SELECT id, user_id, status, created_at, completed_at, archived_at
  FROM {{ m.q("payment_checkout_sessions_archive") }}
 WHERE status IS DISTINCT FROM 'completed'
    OR completed_at IS NULL
    OR completed_at < created_at
    OR archived_at < completed_at
 ORDER BY archived_at, id

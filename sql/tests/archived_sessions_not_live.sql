-- A session is either live or archived, never both (an archived row is moved, not copied)
{% import "macros/common.sql" as m %}
SELECT a.id, a.status AS archived_status, s.status AS live_status, a.archived_at
  FROM {{ m.q("payment_checkout_sessions_archive") }} AS a
  JOIN {{ m.q("payment_checkout_sessions") }} AS s ON s.id = a.id
 ORDER BY a.archived_at, a.id

-- pg_promote's promotion right after a planned fence, as one remote action on
-- the target's host (tasks_from: switchover.yml runs it with psql): refuse unless
-- the target has replayed the fenced LSN, then promote and wait until it takes
-- writes, polling every :poll seconds. pg_promote_after_fence.py runs it, once
-- the target replayed the fence's shutdown checkpoint (or with the LSN given). One psql process starts in ~10 ms where
-- a Python with a database driver took 0.3-1.4 s, all of it inside the write
-- outage; pg_promote(wait => true) polls every 0.1 s.
--
--   psql -X -q -At -v ON_ERROR_STOP=1 -v after_lsn=0/5000060 -v replay_timeout=30 \
--        -v promote_timeout=60 -v poll=0.01 -v waited='{}' -f pg_promote_after_fence.sql
--
-- A node already out of recovery is left alone ("already primary"). Before
-- promoting, a default_transaction_read_only = on or a non-empty
-- synchronous_standby_names in the target's settings is reset (ALTER SYSTEM,
-- reload): a new primary with either would refuse or hold every write until its
-- per-node settings are rendered after the promotion.
-- Prints one JSON object: promoted, reason, waited (what the wrapper saw, as given),
-- before (the state verify.yml compares
-- with: in_recovery, replay_lsn, last_replay_timestamp, checkpoint_timeline,
-- current_timeline) and promote_timings (epoch seconds). A refusal or a promotion that
-- does not finish in time is an ERROR (psql exits 3): nothing was promoted, or
-- the promotion is still under way.
SET application_name = 'drkit-promote';
-- psql does not expand variables inside the dollar-quoted blocks below.
SELECT set_config('drkit.after_lsn', :'after_lsn', false),
       set_config('drkit.replay_timeout', :'replay_timeout', false),
       set_config('drkit.promote_timeout', :'promote_timeout', false),
       set_config('drkit.poll', :'poll', false),
       extract(epoch FROM clock_timestamp()) AS started_at,
       pg_is_in_recovery() AS in_recovery \gset
\if :in_recovery
DO $$
DECLARE
  deadline timestamptz := clock_timestamp()
    + make_interval(secs => current_setting('drkit.replay_timeout')::float);
BEGIN
  IF current_setting('drkit.after_lsn') = '' THEN
    RETURN;
  END IF;
  WHILE NOT pg_last_wal_replay_lsn() >= current_setting('drkit.after_lsn')::pg_lsn LOOP
    IF clock_timestamp() > deadline THEN
      RAISE EXCEPTION 'pg_promote: refusing to promote: the target replayed up to %, short of the fenced LSN % after % s; promoting it would lose what it lacks. Check its replication, then re-run (the old primary stays fenced).',
        pg_last_wal_replay_lsn(), current_setting('drkit.after_lsn'),
        current_setting('drkit.replay_timeout');
    END IF;
    PERFORM pg_sleep(current_setting('drkit.poll')::float);
  END LOOP;
END
$$;
SELECT json_build_object(
         'in_recovery', true,
         'replay_lsn', pg_last_wal_replay_lsn()::text,
         'last_replay_timestamp', pg_last_xact_replay_timestamp()::text,
         'checkpoint_timeline', (SELECT timeline_id FROM pg_control_checkpoint()),
         'current_timeline', NULL) AS before,
       extract(epoch FROM clock_timestamp()) AS replayed_at,
       current_setting('default_transaction_read_only') = 'on'
         OR current_setting('synchronous_standby_names') <> '' AS unfit \gset
\if :unfit
ALTER SYSTEM SET default_transaction_read_only = off;
ALTER SYSTEM SET synchronous_standby_names = '';
SELECT pg_reload_conf() \gset
\endif
SELECT extract(epoch FROM clock_timestamp()) AS promote_started_at, pg_promote(wait => false) \gset
DO $$
DECLARE
  deadline timestamptz := clock_timestamp()
    + make_interval(secs => current_setting('drkit.promote_timeout')::float);
BEGIN
  WHILE pg_is_in_recovery() LOOP
    IF clock_timestamp() > deadline THEN
      RAISE EXCEPTION 'pg_promote: the promotion did not finish within % s; look at the server log, then re-run',
        current_setting('drkit.promote_timeout');
    END IF;
    PERFORM pg_sleep(current_setting('drkit.poll')::float);
  END LOOP;
END
$$;
SELECT json_build_object(
         'promoted', true, 'reason', 'promoted', 'before', :'before'::json,
         'waited', :'waited'::json,
         'promote_timings', json_build_object(
           'script_started_at', :started_at, 'replayed_at', :replayed_at,
           'promote_started_at', :promote_started_at,
           'promoted_at', extract(epoch FROM clock_timestamp())));
\else
SELECT json_build_object(
         'promoted', false, 'reason', 'already primary (no-op)', 'waited', :'waited'::json,
         'before', json_build_object(
           'in_recovery', false,
           'replay_lsn', pg_current_wal_lsn()::text,
           'last_replay_timestamp', NULL,
           'checkpoint_timeline', (SELECT timeline_id FROM pg_control_checkpoint()),
           'current_timeline',
             ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int),
         'promote_timings', json_build_object('script_started_at', :started_at));
\endif

-- Bulk-loads a synthetic facility catalog into tessera's PostgreSQL schema (already migrated,
-- empty). Run by load.sh:  psql -v n=10000000 -f load.sql  with search_path set to the schema.
--
-- Tree (ids are assigned arithmetically, so parents and closure rows need no lookups):
--   /                         id 1
--   /raw                      id 2, R run containers (BlueskyRun), R = n/10 (1,000,000 at 10 M)
--   /raw/<uuid>               run: metadata scan_id, uid, plan_name, sample, time, beamline,
--                             proposal, operator, detectors, summary
--     primary                 container (BlueskyEventStream) with arrays
--       det_image (u2 [n,512,512]), motor, I0, time (f8 [n])
--     baseline                container with arrays motor_x, motor_y[, sample_temp] (f8 [2])
--   /proposals                id 3
--   /proposals/p0001..p0010   ids 4..13; p0001 holds 1111 scans of 9 nodes each: its subtree
--                             (p0001 included) is exactly 10,000 nodes, for the delete bench.
-- Each run block takes 10 consecutive ids (run, primary, 4 arrays, baseline, 3 arrays); runs
-- with 8 descendants instead of 9 (no baseline/sample_temp) leave one id unused, so that the
-- total is exactly n.
\set ON_ERROR_STOP 1
\timing on
SET synchronous_commit = off;
SET maintenance_work_mem = '1GB';
SET work_mem = '256MB';
SET max_parallel_maintenance_workers = 1;
SET temp_buffers = '512MB';
-- p0001_only=true (load.sh restore-p0001): re-create just /proposals/p0001 and its subtree in a
-- loaded catalog (after a DELETE benchmark), with indexes and triggers left in place.
\if :{?p0001_only}
\else
  \set p0001_only false
\endif

-- Sizes ------------------------------------------------------------------------------------
\if :p0001_only
  \set runs 0
  \set runs9 0
  -- whatever is left of the old subtree goes first
  DELETE FROM nodes WHERE id IN (SELECT descendant FROM node_closure WHERE ancestor =
    (SELECT id FROM nodes WHERE key = 'p0001' AND parent =
      (SELECT id FROM nodes WHERE key = 'proposals' AND parent = 1)));
\else
-- fixed: root + raw + proposals + p0001..p0010 + p0001's 9999 descendants = 10,012 nodes.
SELECT :n::bigint AS n,
       10012 AS fixed,
       CASE WHEN (:n::bigint - 10012 - :n::bigint / 10) >= 8 * (:n::bigint / 10)
            THEN :n::bigint / 10
            ELSE (:n::bigint - 10012) / 9 END AS runs
\gset
SELECT (:n - :fixed - :runs) - 8 * :runs AS runs9 \gset
SELECT :runs9 BETWEEN 0 AND :runs AND :runs >= 10 AS ok \gset
\if :ok
\else
  \echo 'n is too small: use n >= 20000'
  SELECT 1/0;
\endif
\echo nodes :n  runs :runs  runs_with_9_descendants :runs9

SELECT count(*) = 0 AS empty FROM nodes \gset
\if :empty
\else
  \echo 'nodes is not empty: load into a fresh schema (load.sh RESET=1)'
  SELECT 1/0;
\endif
\endif

-- Drop indexes and constraints of the bulk tables; remember their exact DDL ------------------
CREATE TEMP TABLE saved_ddl (ord int, ddl text);
\if :p0001_only
\else
INSERT INTO saved_ddl
SELECT CASE c.contype WHEN 'f' THEN 3 ELSE 1 END,
       format('ALTER TABLE %I ADD CONSTRAINT %I %s', r.relname, c.conname, pg_get_constraintdef(c.oid))
FROM pg_constraint c JOIN pg_class r ON r.oid = c.conrelid
WHERE r.relnamespace = current_schema()::text::regnamespace
  AND (c.contype = 'f'
       OR (c.contype IN ('p', 'u') AND r.relname IN ('nodes', 'node_closure', 'data_sources')));
INSERT INTO saved_ddl
SELECT 2, pg_get_indexdef(i.indexrelid)
FROM pg_index i JOIN pg_class r ON r.oid = i.indrelid
WHERE r.relnamespace = current_schema()::text::regnamespace
  AND r.relname IN ('nodes', 'node_closure', 'data_sources')
  AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid);
-- Drop FKs first (they depend on the primary keys), then keys, then plain indexes.
SELECT format('ALTER TABLE %I DROP CONSTRAINT %I', rel.relname, c.conname)
FROM pg_constraint c JOIN pg_class rel ON rel.oid = c.conrelid
WHERE rel.relnamespace = current_schema()::text::regnamespace
  AND (c.contype = 'f'
       OR (c.contype IN ('p', 'u') AND rel.relname IN ('nodes', 'node_closure', 'data_sources')))
ORDER BY c.contype = 'f' DESC, 1 \gexec
SELECT format('DROP INDEX %I', ic.relname)
FROM pg_index i JOIN pg_class t ON t.oid = i.indrelid JOIN pg_class ic ON ic.oid = i.indexrelid
WHERE t.relnamespace = current_schema()::text::regnamespace
  AND t.relname IN ('nodes', 'node_closure', 'data_sources')
ORDER BY 1 \gexec
\endif

-- Statement triggers on nodes (e.g. migration 0002's child_count upkeep) would turn the bulk
-- insert into millions of parent updates: disable them for the load and, when the child_count
-- column exists, write the counts directly (verify.sql checks them).
SELECT coalesce(string_agg(tgname, ', '), 'none') AS user_triggers FROM pg_trigger
WHERE tgrelid = 'nodes'::regclass AND NOT tgisinternal \gset
\if :p0001_only
\else
\echo disabling user triggers on nodes during the load: :user_triggers
ALTER TABLE nodes DISABLE TRIGGER USER;
\endif
SELECT EXISTS (SELECT 1 FROM information_schema.columns WHERE table_schema = current_schema()
               AND table_name = 'nodes' AND column_name = 'child_count') AS has_child_count \gset
\if :p0001_only
  -- the triggers keep child_count
  \set cc_col ''
  \set cc_top ''
  \set cc_blk ''
\elif :has_child_count
  \set cc_col ', child_count'
  \set cc_top ', CASE id WHEN 1 THEN 2 WHEN 2 THEN ' :runs ' WHEN 3 THEN 10 WHEN 4 THEN 1111 ELSE 0 END'
  \set cc_blk ', CASE o.o WHEN 0 THEN 2 WHEN 1 THEN 4 WHEN 6 THEN CASE WHEN r.has9 THEN 3 ELSE 2 END ELSE 0 END'
\else
  \set cc_col ''
  \set cc_top ''
  \set cc_blk ''
\endif

-- Word pools -------------------------------------------------------------------------------
CREATE TEMP TABLE pools AS SELECT
  ARRAY['count','scan','rel_scan','grid_scan','list_scan','rel_grid_scan','adaptive_scan',
        'tune_centroid','fly_scan','spiral','spiral_fermat','log_scan','rel_log_scan',
        'list_grid_scan','scan_nd','ramp_plan','tweak','x2x_scan','rel_spiral','tune_max'] AS plans,
  ARRAY['CHX','CSX','HXN','ISS','SRX','XPD','PDF','SMI'] AS beamlines,
  ARRAY['LaB6','silicon','ceria','nickel','gold','titania','zinc oxide','hematite','alumina',
        'graphite','molybdenite','barium titanate','strontium titanate','copper','platinum',
        'gallium arsenide','halite','quartz','ZIF-8','MOF-5','polystyrene','PEDOT PSS',
        'cesium lead bromide','collagen','lysozyme','cellulose','YBCO','lithium iron phosphate',
        'NMC811','water'] AS materials,
  ARRAY['LaB6','Si','CeO2','Ni','Au','TiO2','ZnO','Fe2O3','Al2O3','C','MoS2','BaTiO3','SrTiO3',
        'Cu','Pt','GaAs','NaCl','SiO2','Zn(C4H5N2)2','Zn4O(BDC)3','(C8H8)n','C6H6O2S','CsPbBr3',
        'C65H102N18O21','C613H951N193O185S10','(C6H10O5)n','YBa2Cu3O7','LiFePO4',
        'LiNi0.8Mn0.1Co0.1O2','H2O'] AS formulas,
  ARRAY['powder','film','crystal','pellet','solution','wafer','nanoparticles','foil'] AS forms,
  ARRAY['Smith','Garcia','Nguyen','Müller','Rossi','Kowalski','Tanaka','Okafor','Haddad','Silva',
        'Johansson','Dubois','Ivanova','Chen','Patel','Kim','Novak','Andersen','Moreau','Santos',
        'Fischer','Yamamoto','Costa','Horvat','Larsen','Popescu','Weber','Schmidt','Lopez','Wang',
        'Sato','Murphy','OBrien','Kaur','Mendes','Bauer','Nakamura','Vargas','Lindqvist','Adeyemi']
    AS surnames,
  ARRAY['pilatus1m','eiger4m','xspress3','merlin','quadem','lambda750k','dexela','vortex']
    AS detectors;

-- Run blocks: the 1111 scans of /proposals/p0001 and the R runs of /raw ---------------------
-- u(i, salt) is a deterministic uniform [0,1) number, so reruns produce the same catalog.
CREATE TEMP TABLE blk AS
WITH b AS (
  SELECT j AS i, 100 + j * 10 AS base, 4::bigint AS parent, ARRAY[1, 3, 4]::bigint[] AS anc,
         format('scan_%s', lpad((j + 1)::text, 6, '0')) AS key, 9000001 + j AS scan_id,
         false AS has9  -- 8 descendants: 1 + 1111 * 9 = 10,000 nodes under p0001
  FROM generate_series(0, 1110) j
  UNION ALL
  SELECT i, 100000 + i * 10, 2, ARRAY[1, 2]::bigint[],
         md5('run' || i)::uuid::text, i + 1, i < :runs9
  FROM generate_series(0, :runs - 1) i
)
SELECT b.*,
       ((hashint8extended(b.scan_id, 1) & 140737488355327)::float8 / 140737488355328) AS u1,
       ((hashint8extended(b.scan_id, 2) & 140737488355327)::float8 / 140737488355328) AS u2,
       ((hashint8extended(b.scan_id, 3) & 140737488355327)::float8 / 140737488355328) AS u3,
       ((hashint8extended(b.scan_id, 4) & 140737488355327)::float8 / 140737488355328) AS u4,
       hashint8extended(b.scan_id, 5) & 2147483647 AS h5,
       hashint8extended(b.scan_id, 6) & 2147483647 AS h6
FROM b;
-- Derived per-run values.
CREATE TEMP TABLE runs AS
SELECT b.*,
       1 + floor(1000 * b.u4 ^ 4)::int AS npts,
       round((1600000000 + (CASE WHEN b.parent = 2 THEN b.i ELSE b.i * 20 END) * 35.0
              + b.u3 * 10)::numeric, 3)::float8 AS t
FROM blk b;
DROP TABLE blk;

-- Node templates inside a block: offset, parent offset, key, family, in-block chain.
CREATE TEMP TABLE off (o int, po int, key text, family text, chain int[]);
INSERT INTO off VALUES
  (0, NULL, NULL,          'container', '{0}'),
  (1, 0,    'primary',     'container', '{0,1}'),
  (2, 1,    'det_image',   'array',     '{0,1,2}'),
  (3, 1,    'motor',       'array',     '{0,1,3}'),
  (4, 1,    'I0',          'array',     '{0,1,4}'),
  (5, 1,    'time',        'array',     '{0,1,5}'),
  (6, 0,    'baseline',    'container', '{0,6}'),
  (7, 6,    'motor_x',     'array',     '{0,6,7}'),
  (8, 6,    'motor_y',     'array',     '{0,6,8}'),
  (9, 6,    'sample_temp', 'array',     '{0,6,9}');

-- Nodes ------------------------------------------------------------------------------------
INSERT INTO nodes (id, parent, key, structure_family, metadata, specs, time_created, time_updated :cc_col)
SELECT *, to_timestamp(1590000000) :cc_top FROM (
  SELECT 1::bigint AS id, NULL::bigint, '', 'container', '{}'::jsonb, '[]'::jsonb, to_timestamp(1590000000)
  UNION ALL
  SELECT 2, 1, 'raw', 'container', '{"description": "raw data from all beamlines"}', '[]',
         to_timestamp(1590000000)
  UNION ALL
  SELECT 3, 1, 'proposals', 'container', '{"description": "data organised by proposal"}', '[]',
         to_timestamp(1590000000)
  UNION ALL
  SELECT 3 + p, 3, format('p%s', lpad(p::text, 4, '0')), 'container',
         jsonb_build_object('proposal_id', 310000 + p, 'title', format('Proposal %s', p),
                            'pi', (SELECT surnames[1 + p % 40] FROM pools)),
         '[]', to_timestamp(1590000000 + p)
  FROM generate_series(1, 10) p
) top
WHERE NOT :p0001_only OR id = 4;

INSERT INTO nodes (id, parent, key, structure_family, metadata, specs, time_created, time_updated :cc_col)
SELECT r.base + o.o,
       CASE WHEN o.o = 0 THEN r.parent ELSE r.base + o.po END,
       CASE WHEN o.o = 0 THEN r.key ELSE o.key END,
       o.family,
       CASE o.o
         WHEN 0 THEN jsonb_build_object(
           'scan_id', r.scan_id,
           'uid', md5('uid' || r.scan_id)::uuid::text,
           'plan_name', p.plans[1 + floor(20 * r.u1 ^ 2.5)::int],
           'sample', jsonb_build_object(
              'name', format('%s %s %s', p.materials[1 + r.h5 % 30], p.forms[1 + (r.h5 / 30) % 8],
                             1 + (r.h5 / 240) % 200),
              'composition', p.formulas[1 + r.h5 % 30]),
           'time', r.t,
           'beamline', p.beamlines[1 + floor(8 * r.u2 ^ 1.5)::int],
           'proposal', jsonb_build_object(
              'id', 300000 + r.i / 500,
              'pi', format('%s. %s', chr(65 + ((r.i / 500) * 7) % 26), p.surnames[1 + ((r.i / 500) * 13) % 40])),
           'operator', p.surnames[1 + r.h6 % 40],
           'detectors', to_jsonb(ARRAY(SELECT p.detectors[1 + (r.h6 / 40 + k) % 8]
                                       FROM generate_series(0, (r.h6 / 320) % 3) k)),
           'summary', jsonb_build_object('duration', round((r.npts * (0.1 + 2 * r.u3))::numeric, 3),
                                         'num_points', r.npts))
         WHEN 1 THEN jsonb_build_object(
           'stream_name', 'primary',
           'time', r.t + 0.5,
           'data_keys', jsonb_build_object(
              'det_image', jsonb_build_object('dtype', 'array', 'shape', jsonb_build_array(512, 512),
                                              'source', 'PV:XF:DET{Cam:1}image', 'external', 'FILESTORE:'),
              'motor', jsonb_build_object('dtype', 'number', 'shape', '[]'::jsonb,
                                          'source', 'PV:XF:ES{Mtr:1}Mtr.RBV', 'units', 'mm', 'precision', 4),
              'I0', jsonb_build_object('dtype', 'number', 'shape', '[]'::jsonb,
                                       'source', 'PV:XF:ES{IC:0}Cur', 'units', 'A'),
              'time', jsonb_build_object('dtype', 'number', 'shape', '[]'::jsonb, 'source', 'clock')),
           'hints', jsonb_build_object('fields', jsonb_build_array('det_image', 'I0')))
         WHEN 6 THEN jsonb_build_object(
           'stream_name', 'baseline',
           'time', r.t + 0.1,
           'data_keys', jsonb_build_object(
              'motor_x', jsonb_build_object('dtype', 'number', 'shape', '[]'::jsonb, 'units', 'mm'),
              'motor_y', jsonb_build_object('dtype', 'number', 'shape', '[]'::jsonb, 'units', 'mm'),
              'sample_temp', jsonb_build_object('dtype', 'number', 'shape', '[]'::jsonb, 'units', 'K')))
         WHEN 2 THEN '{"units": "counts"}'::jsonb
         WHEN 4 THEN '{"units": "A"}'::jsonb
         WHEN 9 THEN '{"units": "K"}'::jsonb
         WHEN 5 THEN '{"units": "s"}'::jsonb
         ELSE '{"units": "mm"}'::jsonb
       END,
       CASE o.o WHEN 0 THEN '[{"name": "BlueskyRun", "version": "1"}]'::jsonb
                WHEN 1 THEN '[{"name": "BlueskyEventStream", "version": "1"}]'::jsonb
                WHEN 6 THEN '[{"name": "BlueskyEventStream", "version": "1"}]'::jsonb
                ELSE '[]'::jsonb END,
       to_timestamp(r.t), to_timestamp(r.t) :cc_blk
-- LATERAL makes a nested loop over runs in id order: rows arrive in id order, no sort.
FROM runs r CROSS JOIN pools p
CROSS JOIN LATERAL (SELECT * FROM off WHERE off.o < 9 OR r.has9) o;

SELECT setval(pg_get_serial_sequence('nodes', 'id'), (SELECT max(id) FROM nodes));

-- Closure ----------------------------------------------------------------------------------
\if :p0001_only
\else
INSERT INTO node_closure (ancestor, descendant, depth) VALUES
  (1, 1, 0), (2, 2, 0), (1, 2, 1), (3, 3, 0), (1, 3, 1);
\endif
INSERT INTO node_closure (ancestor, descendant, depth)
SELECT a.x, 3 + p, a.d FROM generate_series(1, 10) p,
  LATERAL (VALUES (3 + p, 0), (3, 1), (1, 2)) a(x, d)
WHERE NOT :p0001_only OR p = 1;
INSERT INTO node_closure (ancestor, descendant, depth)
SELECT x.ancestor, r.base + o.o, x.depth
FROM runs r CROSS JOIN LATERAL (SELECT * FROM off WHERE off.o < 9 OR r.has9) o,
LATERAL (
  -- the block's own chain (run, stream, self), then the block's ancestors above the run
  SELECT r.base + o.chain[k], cardinality(o.chain) - k FROM generate_subscripts(o.chain, 1) k
  UNION ALL
  SELECT r.anc[k], cardinality(r.anc) - k + cardinality(o.chain) FROM generate_subscripts(r.anc, 1) k
) x(ancestor, depth);

-- Data sources (one per array) -------------------------------------------------------------
INSERT INTO data_sources (node_id, structure_family, structure, mimetype, parameters, management)
SELECT r.base + o.o, 'array',
       CASE
         WHEN o.o = 2 THEN jsonb_build_object(
           'data_type', '{"endianness": "little", "kind": "u", "itemsize": 2, "dt_units": null}'::jsonb,
           'chunks', jsonb_build_array(
              (SELECT jsonb_agg(least(10, r.npts - g)) FROM generate_series(0, r.npts - 1, 10) g),
              jsonb_build_array(512), jsonb_build_array(512)),
           'shape', jsonb_build_array(r.npts, 512, 512),
           'dims', NULL, 'resizable', false)
         -- 1-D float64 event columns of length npts
         WHEN o.o IN (3, 4, 5) THEN jsonb_build_object(
           'data_type', '{"endianness": "little", "kind": "f", "itemsize": 8, "dt_units": null}'::jsonb,
           'chunks', jsonb_build_array(jsonb_build_array(r.npts)),
           'shape', jsonb_build_array(r.npts), 'dims', NULL, 'resizable', false)
         -- baseline readings: before and after the run
         ELSE '{"data_type": {"endianness": "little", "kind": "f", "itemsize": 8, "dt_units": null},
                "chunks": [[2]], "shape": [2], "dims": null, "resizable": false}'::jsonb
       END,
       'application/x-zarr', '{}'::jsonb, 'writable'
FROM runs r
CROSS JOIN LATERAL (SELECT * FROM off WHERE (off.o < 9 OR r.has9) AND off.family = 'array') o;

-- Restore keys, indexes, then foreign keys (validated: this also checks the load) -----------
SELECT ddl FROM saved_ddl ORDER BY ord, ddl \gexec
ALTER TABLE nodes ENABLE TRIGGER USER;

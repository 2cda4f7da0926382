-- Kinship in the change feed: the kin part of the transactional outbox. One row per recorded
-- relation (AddKin records both directions in member_kin; the change names the relation as
-- asked, its inverse goes with it). change_seq comes from change_counter like every change.
CREATE TABLE kin_changes (
  change_seq      BIGINT NOT NULL,
  kind            VARCHAR(16) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  member_id       BIGINT NOT NULL,
  kin_member_id   BIGINT NOT NULL,
  relation        VARCHAR(16) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  source          VARCHAR(100) NOT NULL,
  recorded_by     VARCHAR(64) NOT NULL,
  recorded_at     TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  PRIMARY KEY (change_seq)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- Relations recorded before this migration enter the feed once, in the order they were
-- recorded, under the counter's row lock (so no writer takes the same numbers meanwhile).
START TRANSACTION;
UPDATE change_counter SET seq = seq WHERE id = 1;
INSERT INTO kin_changes (change_seq, kind, member_id, kin_member_id, relation, source, recorded_by, recorded_at)
  SELECT (SELECT seq FROM change_counter WHERE id = 1)
           + ROW_NUMBER() OVER (ORDER BY k.recorded_at, k.member_id, k.kin_member_id, k.relation),
         'added', k.member_id, k.kin_member_id, k.relation, k.source, k.recorded_by, k.recorded_at
  FROM member_kin k WHERE k.member_id < k.kin_member_id;
UPDATE change_counter SET seq = seq + (SELECT COUNT(*) FROM kin_changes) WHERE id = 1;
COMMIT;

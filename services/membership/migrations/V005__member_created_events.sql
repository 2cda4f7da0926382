-- The bulk import's "created" events, stored compactly (issue "Member registry", import
-- performance). One row holds the created events of up to 500 members that one import batch
-- registered: their change-feed numbers are first_seq .. last_seq (gap-free, in that order) and
-- their member ids ascend within [first_member_id, last_member_id] (ranges of different rows do
-- not overlap: each batch takes its ids from member_id_counter). `events` holds, per member in
-- sequence order: member_id TAB status TAB org_code TAB effective_on TAB byte length of the
-- details TAB the details as member_events.details stores them; version is 1, kind "created",
-- deciding organisation the member's organisation. The members' history (ListMemberEvents) and
-- the change feed expand a row into the same events a member_events row per member would give;
-- member_events keeps every other event (CreateMember's, every later step or change).
CREATE TABLE member_created_events (
  last_seq         BIGINT NOT NULL,
  first_seq        BIGINT NOT NULL,
  first_member_id  BIGINT NOT NULL,
  last_member_id   BIGINT NOT NULL,
  recorded_by      VARCHAR(64) NOT NULL,
  recorded_at      TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  events           MEDIUMBLOB NOT NULL,
  PRIMARY KEY (last_seq),
  KEY idx_member_created_events_member (first_member_id)
) ENGINE=InnoDB;

-- members again, without AUTO_INCREMENT on member_id and without created_at/updated_at.
-- Every insert takes its id from member_id_counter (V004), so AUTO_INCREMENT served nothing, but
-- MariaDB (innodb_autoinc_lock_mode 1, its default) holds a table lock on an AUTO_INCREMENT
-- table for the whole of every LOAD DATA: the import's writers loaded their batches one at a
-- time. When a member was registered or last changed is what its events record (recorded_at);
-- the record's own timestamps were read by nothing and cost every insert. Rebuilt by copy (a
-- column's AUTO_INCREMENT cannot be removed in place on TiDB); the rename swaps both at once.
CREATE TABLE members_v5 (
  member_id           BIGINT NOT NULL,
  id_hash             BINARY(16) NOT NULL,
  id_sealed           VARBINARY(64) NOT NULL,
  id_masked           CHAR(18) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  name                VARCHAR(50) NOT NULL,
  gender              CHAR(1) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  ethnicity           VARCHAR(32) NULL,
  birth_date          DATE NOT NULL,
  education           VARCHAR(24) CHARACTER SET ascii COLLATE ascii_bin NULL,
  occupation          VARCHAR(100) NULL,
  phone               VARCHAR(11) CHARACTER SET ascii COLLATE ascii_bin NULL,
  org_code            VARCHAR(32) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  status              VARCHAR(24) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  applied_on          DATE NULL,
  activist_on         DATE NULL,
  target_on           DATE NULL,
  joined_on           DATE NULL,
  full_on             DATE NULL,
  extension_months    INT NOT NULL DEFAULT 0,
  exited_on           DATE NULL,
  monthly_income_fen  BIGINT NULL,
  is_mobile           TINYINT NOT NULL DEFAULT 0,
  version             INT NOT NULL DEFAULT 1,
  PRIMARY KEY (member_id),
  UNIQUE KEY uk_members_id_hash (id_hash),
  KEY idx_members_org_status (org_code, status)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
INSERT INTO members_v5 (member_id, id_hash, id_sealed, id_masked, name, gender, ethnicity, birth_date, education,
                        occupation, phone, org_code, status, applied_on, activist_on, target_on, joined_on, full_on,
                        extension_months, exited_on, monthly_income_fen, is_mobile, version)
  SELECT member_id, id_hash, id_sealed, id_masked, name, gender, ethnicity, birth_date, education,
         occupation, phone, org_code, status, applied_on, activist_on, target_on, joined_on, full_on,
         extension_months, exited_on, monthly_income_fen, is_mobile, version
  FROM members;
RENAME TABLE members TO members_v4, members_v5 TO members;
DROP TABLE members_v4;

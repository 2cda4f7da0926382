-- Members, their history, their kin, and the change feed (issue "Member registry").
-- Only MemberLogic writes members, member_events and member_kin; every write of members
-- appends to member_events in the same transaction. Plain SQL that also runs on MySQL 8
-- and TiDB: no triggers, procedures or events, no reliance on auto-increment order.

-- The current state of every member, derived from member_events (a projection kept in the
-- same transaction as the events; never changed without an event).
-- The resident ID number is never stored in the clear: id_hash is the keyed hash
-- (HMAC-SHA256 truncated to 16 bytes, common::PiiProtector) for exact lookup and uniqueness;
-- id_sealed its AES-256-GCM encryption; id_masked the masked form shown to everyone.
CREATE TABLE members (
  member_id           BIGINT NOT NULL AUTO_INCREMENT,
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
  created_at          TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  updated_at          TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  PRIMARY KEY (member_id),
  UNIQUE KEY uk_members_id_hash (id_hash),
  KEY idx_members_org_status (org_code, status),
  KEY idx_members_status_joined (status, joined_on)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- Append-only history: one row per lifecycle step or change. change_seq is the change-feed
-- sequence (see change_counter): gap-free and in commit order, so this table is also the
-- members' part of the transactional outbox.
CREATE TABLE member_events (
  change_seq      BIGINT NOT NULL,
  member_id       BIGINT NOT NULL,
  version         INT NOT NULL,
  kind            VARCHAR(24) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  status_after    VARCHAR(24) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  org_code        VARCHAR(32) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  effective_on    DATE NOT NULL,
  deciding_org    VARCHAR(32) CHARACTER SET ascii COLLATE ascii_bin NULL,
  recorded_by     VARCHAR(64) NOT NULL,
  recorded_at     TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  details         TEXT NULL,
  PRIMARY KEY (change_seq),
  UNIQUE KEY uk_member_events_member (member_id, version)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- Member-to-member relations, stored in both directions (parent <-> child, the rest symmetric).
CREATE TABLE member_kin (
  member_id       BIGINT NOT NULL,
  kin_member_id   BIGINT NOT NULL,
  relation        VARCHAR(16) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  source          VARCHAR(100) NOT NULL,
  recorded_by     VARCHAR(64) NOT NULL,
  recorded_at     TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  PRIMARY KEY (member_id, kin_member_id, relation),
  KEY idx_member_kin_kin (kin_member_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- The change-feed sequence: one row. A writer runs UPDATE ... SET seq = seq + n inside its
-- transaction; the row lock is held to commit, so sequence numbers are handed out in commit
-- order and a rolled-back transaction gives its numbers back (no gaps).
CREATE TABLE change_counter (
  id   TINYINT NOT NULL,
  seq  BIGINT NOT NULL,
  PRIMARY KEY (id)
) ENGINE=InnoDB;
INSERT INTO change_counter (id, seq) VALUES (1, 0);

-- The organisations' part of the outbox: one row per change of an organisation.
CREATE TABLE organisation_changes (
  change_seq    BIGINT NOT NULL,
  org_code      VARCHAR(32) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  kind          VARCHAR(16) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  payload       TEXT NOT NULL,
  recorded_at   TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  PRIMARY KEY (change_seq)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- Person numbers: every person gets a compact number (BIGINT) in first-seen order, handed out
-- in blocks from a counter row (each block in a short transaction of its own, so concurrent
-- ingests never wait on each other for it; a block's unused numbers are a gap, nothing else).
-- `persons` keeps the one index by the 16-byte keyed hash (id_hash -> person_no); every big
-- table is clustered by the number (or by payment_id), so a bulk ingest appends in the order of
-- its file instead of inserting at random places of trees larger than the buffer pool, and the
-- check reads every table in its clustered order.
-- Nothing was deployed with V002: its person tables are replaced, not converted.
-- Plain SQL only (MariaDB, MySQL 8, TiDB): no triggers, procedures or events.

DROP TABLE payments;
DROP TABLE civil_events;
DROP TABLE recipient_accounts;
DROP TABLE recipients;
DROP TABLE enrolments;
DROP TABLE persons;

CREATE TABLE counters (
  name        VARCHAR(32) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  next_value  BIGINT NOT NULL,
  PRIMARY KEY (name)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
INSERT INTO counters (name, next_value) VALUES ('person_no', 1);

CREATE TABLE persons (
  person_no   BIGINT NOT NULL,
  id_hash     BINARY(16) NOT NULL,
  id_sealed   VARBINARY(64) NOT NULL,
  id_masked   CHAR(18) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  created_at  TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  PRIMARY KEY (person_no),
  UNIQUE KEY uq_persons_hash (id_hash)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE enrolments (
  program_code  VARCHAR(32) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  person_no     BIGINT NOT NULL,
  from_period   VARCHAR(7) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  to_period     VARCHAR(7) CHARACTER SET ascii COLLATE ascii_bin NULL,
  amount_fen    BIGINT NULL,
  updated_at    TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  PRIMARY KEY (program_code, person_no, from_period),
  KEY idx_enrolments_person (person_no)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- One row per person on a village roll: the attributes of their latest recipients.csv row.
CREATE TABLE recipients (
  person_no          BIGINT NOT NULL,
  name               VARCHAR(100) NOT NULL,
  org_code           VARCHAR(32) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  household_id       VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  is_household_head  TINYINT NOT NULL,
  is_cadre           TINYINT NOT NULL,
  latest_since       DATE NOT NULL,
  updated_at         TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  PRIMARY KEY (person_no),
  KEY idx_recipients_org (org_code, household_id, person_no),
  KEY idx_recipients_household (household_id, is_household_head)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- The registered-account history: one row per person and account_since.
CREATE TABLE recipient_accounts (
  person_no      BIGINT NOT NULL,
  account_since  DATE NOT NULL,
  account_no     VARCHAR(24) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  PRIMARY KEY (person_no, account_since)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE civil_events (
  person_no   BIGINT NOT NULL,
  event       VARCHAR(16) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  event_date  DATE NOT NULL,
  source_ref  VARCHAR(128) NULL,
  PRIMARY KEY (person_no, event, event_date)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- What the bank paid. paid_at is the instant in China Standard Time (UTC+8, fixed).
-- ingest_id and source_line name the file row that brought it (for "appears on line N").
CREATE TABLE payments (
  payment_id    VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  batch_id      VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  program_code  VARCHAR(32) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  period        VARCHAR(7) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  person_no     BIGINT NOT NULL,
  account_no    VARCHAR(24) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  amount_fen    BIGINT NOT NULL,
  paid_at       DATETIME(6) NOT NULL,
  reverses      VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NULL,
  ingest_id     CHAR(16) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  source_line   BIGINT NOT NULL,
  PRIMARY KEY (payment_id),
  KEY idx_payments_scope (program_code, period, payment_id),
  KEY idx_payments_period_person (period, person_no),
  KEY idx_payments_reverses (reverses)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- Direct-subsidy disbursements (formats.md: programmes, enrolments, recipients, payments,
-- batches, civil_events) and the runs and findings of the disbursement check.
-- Personal data: a resident ID number is stored once, sealed (AES-256-GCM) in `persons`, with
-- its masked form; every other table refers to the person by `id_hash`, the 16-byte keyed hash
-- (HMAC-SHA256) of the normalised number. Plain SQL only (MariaDB, MySQL 8, TiDB): no triggers,
-- procedures or events, no reliance on auto-increment order.

CREATE TABLE persons (
  id_hash     BINARY(16) NOT NULL,
  id_sealed   VARBINARY(64) NOT NULL,
  id_masked   CHAR(18) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  created_at  TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  PRIMARY KEY (id_hash)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE programmes (
  program_code               VARCHAR(32) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  name                       VARCHAR(200) NOT NULL,
  unit                       VARCHAR(16) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  frequency                  VARCHAR(16) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  amount_fen                 BIGINT NOT NULL,
  valid_from                 VARCHAR(7) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  valid_to                   VARCHAR(7) CHARACTER SET ascii COLLATE ascii_bin NULL,
  excludes_cadre_households  TINYINT NOT NULL,
  grace_days                 INT NOT NULL,
  updated_at                 TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  PRIMARY KEY (program_code)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE enrolments (
  program_code  VARCHAR(32) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  id_hash       BINARY(16) NOT NULL,
  from_period   VARCHAR(7) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  to_period     VARCHAR(7) CHARACTER SET ascii COLLATE ascii_bin NULL,
  amount_fen    BIGINT NULL,
  updated_at    TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  PRIMARY KEY (program_code, id_hash, from_period),
  KEY idx_enrolments_person (id_hash)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- One row per person on a village roll: the attributes of their latest recipients.csv row.
CREATE TABLE recipients (
  id_hash            BINARY(16) NOT NULL,
  name               VARCHAR(100) NOT NULL,
  org_code           VARCHAR(32) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  household_id       VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  is_household_head  TINYINT NOT NULL,
  is_cadre           TINYINT NOT NULL,
  latest_since       DATE NOT NULL,
  updated_at         TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  PRIMARY KEY (id_hash),
  KEY idx_recipients_org (org_code, household_id, id_hash),
  KEY idx_recipients_household (household_id, is_household_head)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- The registered-account history: one row per person and account_since.
CREATE TABLE recipient_accounts (
  id_hash        BINARY(16) NOT NULL,
  account_since  DATE NOT NULL,
  account_no     VARCHAR(24) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  PRIMARY KEY (id_hash, account_since)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE civil_events (
  id_hash     BINARY(16) NOT NULL,
  event       VARCHAR(16) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  event_date  DATE NOT NULL,
  source_ref  VARCHAR(128) NULL,
  PRIMARY KEY (id_hash, event, event_date)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE batches (
  batch_id            VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  program_code        VARCHAR(32) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  period              VARCHAR(7) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  declared_count      BIGINT NOT NULL,
  declared_total_fen  BIGINT NOT NULL,
  scheduled_on        DATE NOT NULL,
  updated_at          TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  PRIMARY KEY (batch_id),
  KEY idx_batches_scope (program_code, period)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- What the bank paid. paid_at is the instant in China Standard Time (UTC+8, fixed).
-- ingest_id and source_line name the file row that brought it (for "appears on line N").
CREATE TABLE payments (
  payment_id    VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  batch_id      VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  program_code  VARCHAR(32) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  period        VARCHAR(7) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  id_hash       BINARY(16) NOT NULL,
  account_no    VARCHAR(24) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  amount_fen    BIGINT NOT NULL,
  paid_at       DATETIME(6) NOT NULL,
  reverses      VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NULL,
  ingest_id     CHAR(16) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  source_line   BIGINT NOT NULL,
  PRIMARY KEY (payment_id),
  KEY idx_payments_scope (program_code, period, payment_id),
  KEY idx_payments_period_person (period, id_hash),
  KEY idx_payments_reverses (reverses)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- A counter bumped by every ingest that changed something: a check run records the value it
-- saw, so the scheduler knows whether the data changed since.
CREATE TABLE data_state (
  name        VARCHAR(32) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  generation  BIGINT NOT NULL,
  changed_at  TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  PRIMARY KEY (name)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
INSERT INTO data_state (name, generation) VALUES ('disbursement', 0);

-- run_id: UTC start time and random suffix ("20260914T020500Z-1a2b3c4d"); "latest" is the
-- greatest started_at (then run_id), never an auto-increment.
CREATE TABLE check_runs (
  run_id                VARCHAR(40) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  program_code          VARCHAR(32) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  period                VARCHAR(7) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  as_of                 DATE NOT NULL,
  started_at            DATETIME(6) NOT NULL,
  finished_at           DATETIME(6) NOT NULL,
  data_generation       BIGINT NOT NULL,
  payments_checked      BIGINT NOT NULL,
  entitlements_checked  BIGINT NOT NULL,
  warnings              TEXT NOT NULL,
  triggered_by          VARCHAR(16) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  PRIMARY KEY (run_id),
  KEY idx_check_runs_started (started_at, run_id),
  KEY idx_check_runs_scope (program_code, period, data_generation)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE check_run_counts (
  run_id  VARCHAR(40) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  rule    VARCHAR(32) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  finding_count  BIGINT NOT NULL,
  PRIMARY KEY (run_id, rule)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- A run's findings in findings.csv order (seq). finding_id is stable across runs: a hash of
-- (rule, program, period, person hash, payment_id, batch_id).
CREATE TABLE findings (
  run_id        VARCHAR(40) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  seq           BIGINT NOT NULL,
  finding_id    CHAR(32) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  rule          VARCHAR(32) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  program_code  VARCHAR(32) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  period        VARCHAR(7) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  id_hash       BINARY(16) NULL,
  payment_id    VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  batch_id      VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  expected_fen  BIGINT NULL,
  actual_fen    BIGINT NULL,
  detail        VARCHAR(1000) NOT NULL,
  evidence      TEXT NOT NULL,
  PRIMARY KEY (run_id, seq),
  KEY idx_findings_id (finding_id, run_id),
  KEY idx_findings_rule (run_id, rule, seq)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- Review decisions, keyed by the stable finding_id, so they carry over to later runs in which
-- the finding still stands.
CREATE TABLE finding_reviews (
  finding_id   CHAR(32) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  state        VARCHAR(16) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  reason       VARCHAR(1000) NOT NULL,
  reviewed_by  VARCHAR(100) NOT NULL,
  reviewed_at  DATETIME(6) NOT NULL,
  PRIMARY KEY (finding_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- The shared check machinery (common/checks): runs as operations and the review history.
-- Expand only: a replica of the previous version runs beside these tables without reading them.

-- Every check run as an operation: RUNNING while it goes (written again every few seconds),
-- then SUCCEEDED (its counts and findings in check_runs / findings) or FAILED (error).
CREATE TABLE check_operations (
  run_id        VARCHAR(40) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  check_name    VARCHAR(32) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  scope_key     VARCHAR(200) NOT NULL,
  state         VARCHAR(16) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  phase         VARCHAR(32) NOT NULL,
  done          BIGINT NOT NULL,
  total         BIGINT NOT NULL,
  error_code    INT NOT NULL,
  error         VARCHAR(1000) NOT NULL,
  requested_by  VARCHAR(100) NOT NULL,
  started_at    DATETIME(6) NOT NULL,
  updated_at    DATETIME(6) NOT NULL,
  finished_at   DATETIME(6) NULL,
  PRIMARY KEY (run_id),
  KEY idx_check_operations_scope (check_name, scope_key, state)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- Every review decision on a finding, oldest first (finding_reviews keeps the last one).
CREATE TABLE finding_review_history (
  finding_id    CHAR(32) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  decided_at    DATETIME(6) NOT NULL,
  from_state    VARCHAR(16) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  to_state      VARCHAR(16) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  reason        VARCHAR(1000) NOT NULL,
  reviewer      VARCHAR(100) NOT NULL,
  PRIMARY KEY (finding_id, decided_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- Every error of an import whose report could not carry them all (common/import_errors.h): kept
-- 30 days under the report's id, read page by page in line order (seq). Expand only.
CREATE TABLE import_errors (
  report_id    CHAR(32) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  seq          BIGINT NOT NULL,
  line         BIGINT NOT NULL,
  column_name  VARCHAR(200) NOT NULL,
  code         VARCHAR(64) NOT NULL,
  message      VARCHAR(2000) NOT NULL,
  created_at   DATETIME NOT NULL,
  PRIMARY KEY (report_id, seq),
  KEY idx_import_errors_created (created_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

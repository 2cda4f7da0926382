-- Party organisations on the county/township/village tree.
-- `path` is the materialised chain of codes from the top ('/top/.../self/'), so a subtree is
-- one index range scan; moves rewrite the paths of the moved subtree.
CREATE TABLE organisations (
  org_code        VARCHAR(32) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  name            VARCHAR(100) NOT NULL,
  org_type        VARCHAR(16) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  org_kind        VARCHAR(16) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  parent_code     VARCHAR(32) CHARACTER SET ascii COLLATE ascii_bin NULL,
  division_code   CHAR(12) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  established_on  DATE NULL,
  population      BIGINT NULL,
  path            VARCHAR(700) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  depth           INT NOT NULL,
  created_at      TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  updated_at      TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  PRIMARY KEY (org_code),
  KEY idx_organisations_parent (parent_code, org_code),
  KEY idx_organisations_path (path)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- The cadrepay schema; subsidy and disbursement tables follow in later migrations.
CREATE TABLE service_info (
  name VARCHAR(64) NOT NULL PRIMARY KEY,
  value VARCHAR(255) NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- Reversals in a table of their own, so that `payments` needs no index by `reverses`.
-- Almost every payment reverses nothing: the index held a (NULL, payment_id) entry for each of
-- them, and building it was about a sixth of the server's work of a payments ingest. What read
-- by it (the disclosure nets a payment of the reversals that name it) reads this small table.
-- A reversal is written here by the ingest that writes its payment, in the same transaction;
-- `payments.reverses` stays as it was (the check and the re-ingest comparison read it there).
-- Plain SQL only (MariaDB, MySQL 8, TiDB): no triggers, procedures or events.

CREATE TABLE payment_reversals (
  reverses    VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  payment_id  VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  amount_fen  BIGINT NOT NULL,
  PRIMARY KEY (reverses, payment_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

INSERT INTO payment_reversals (reverses, payment_id, amount_fen)
  SELECT reverses, payment_id, amount_fen FROM payments WHERE reverses IS NOT NULL;

ALTER TABLE payments DROP INDEX idx_payments_reverses;

-- payments without its (program_code, period, payment_id) index.
-- Only the check's payment scan used it, to read the payments of one programme or period. A check
-- of one programme or period now reads every payment, as a full check does (a reversal nets off a
-- payment filed under another period, a payment is due by the batch it names, an account is shared
-- across programmes), and judges only its scope's. Nothing else reads payments by programme: the
-- disclosure goes through (period, person_no), the re-ingest through the primary key. Keeping the
-- index cost every payment of every ingest an insert into a third secondary tree.
-- Plain SQL only (MariaDB, MySQL 8, TiDB).

ALTER TABLE payments DROP INDEX idx_payments_scope;

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

-- When a member was registered or last changed is what its events record (recorded_at); the
-- record's own copies were read by nothing and cost every member insert.
ALTER TABLE members DROP COLUMN created_at;
ALTER TABLE members DROP COLUMN updated_at;

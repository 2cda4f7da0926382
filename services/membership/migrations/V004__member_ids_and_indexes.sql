-- Member ids for bulk writers (issue "Member registry", import performance).
-- Every insert of a member takes its id from member_id_counter (a short transaction of its own,
-- outside the writer's), never from AUTO_INCREMENT: the import then writes members with known
-- ids, reads nothing back, and can load a batch's members before taking the change-feed lock.
CREATE TABLE member_id_counter (
  id       TINYINT NOT NULL,
  next_id  BIGINT NOT NULL,
  PRIMARY KEY (id)
) ENGINE=InnoDB;
INSERT INTO member_id_counter (id, next_id) SELECT 1, COALESCE(MAX(member_id), 0) + 1 FROM members;

-- Only the date-rule run read it: its subtree form goes through idx_members_org_status
-- (org_code, status = 'probationary'), and the daily registry-wide count is one scan. Keeping it
-- cost every member insert a random index insert (about a tenth of the bulk import's time).
DROP INDEX idx_members_status_joined ON members;

#include "block_rows.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

namespace grassroots::cadrepay {
namespace {

std::vector<int64_t> Gather(int64_t estimate, int64_t n) {
  BlockRows<int64_t> rows;
  rows.ExpectRows(estimate);
  for (int64_t i = 0; i < n; ++i) rows.push_back(i * 7);
  EXPECT_EQ(rows.size(), static_cast<size_t>(n));
  std::vector<int64_t> out = {-1, -2};  // replaced, not appended to
  rows.MoveInto(out);
  EXPECT_EQ(rows.size(), 0u);
  return out;
}

void ExpectInOrder(const std::vector<int64_t>& out, int64_t n) {
  ASSERT_EQ(out.size(), static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) ASSERT_EQ(out[static_cast<size_t>(i)], i * 7) << "row " << i;
}

TEST(BlockRows, RowsWithinTheEstimateAreHandedOverInOrder) { ExpectInOrder(Gather(1000, 900), 900); }

TEST(BlockRows, RowsBeyondAnEstimateTooLowGoOnInBlocks) {
  // The first block holds the estimate (and some room); the rest spills over several blocks.
  ExpectInOrder(Gather(10, 700000), 700000);
}

TEST(BlockRows, NoEstimateOrAWrongOneChangesNothingButTheBlocks) {
  ExpectInOrder(Gather(0, 600000), 600000);
  ExpectInOrder(Gather(-5, 3), 3);
  ExpectInOrder(Gather(5000000, 3), 3);
  ExpectInOrder(Gather(100, 0), 0);
}

TEST(BlockRows, CanBeFilledAgainAfterItsRowsWereMoved) {
  BlockRows<int64_t> rows;
  rows.ExpectRows(2);
  for (int i = 0; i < 5; ++i) rows.push_back(i);
  std::vector<int64_t> first;
  rows.MoveInto(first);
  rows.push_back(42);
  std::vector<int64_t> second;
  rows.MoveInto(second);
  EXPECT_EQ(first, (std::vector<int64_t>{0, 1, 2, 3, 4}));
  EXPECT_EQ(second, (std::vector<int64_t>{42}));
}

}  // namespace
}  // namespace grassroots::cadrepay

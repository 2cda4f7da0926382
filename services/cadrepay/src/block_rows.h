#pragma once
// BlockRows: the check's way of gathering a table's rows without knowing their number first.

#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

namespace grassroots::cadrepay {

// Rows gathered in blocks, then handed over as one vector. The first block is sized by the
// table's estimated rows (ExpectRows; with room to spare: capacity never touched costs address
// space, not memory), so a table that fits in it is handed over as it is, with no copy. Rows
// beyond it go into blocks of a fixed size and the whole is moved into one vector of exactly
// their number, each block freed as it is moved: the peak is the rows plus one block (a block
// is above the service's mmap threshold, main.cc, so a freed block leaves the process at once).
// Moving and copying the blocks was about a tenth of the check's service time at 5,000,000
// recipients: every row's memory was touched (zeroed by the kernel) twice.
template <typename T>
class BlockRows final {
 public:
  // Sizes the first block for `estimate` rows (before the first push_back).
  void ExpectRows(int64_t estimate) {
    if (!blocks_.empty() || estimate <= 0) return;
    const auto n = static_cast<size_t>(estimate);
    blocks_.emplace_back();
    blocks_.back().reserve(n + n / 4 + kBlock / 4);
  }
  void push_back(const T& row) {
    if (blocks_.empty() || blocks_.back().size() == blocks_.back().capacity()) {
      blocks_.emplace_back();
      blocks_.back().reserve(kBlock);
    }
    blocks_.back().push_back(row);
    ++size_;
  }
  size_t size() const { return size_; }
  void MoveInto(std::vector<T>& out) {
    out.clear();
    out.shrink_to_fit();
    if (blocks_.size() == 1) {
      out = std::move(blocks_.front());
    } else {
      out.reserve(size_);
      for (auto& block : blocks_) {
        out.insert(out.end(), block.begin(), block.end());
        std::vector<T>().swap(block);
      }
    }
    blocks_.clear();
    size_ = 0;
  }

 private:
  static constexpr size_t kBlock = size_t{1} << 18;
  std::vector<std::vector<T>> blocks_;
  size_t size_ = 0;
};

}  // namespace grassroots::cadrepay

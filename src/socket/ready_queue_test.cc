// The ready queue on its own: the kernel ready list's order, rebuilt from times.
#include "socket/ready_queue.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <vector>

namespace loopfast {
namespace {

struct Item : ReadyQueue::Member {
  int id = 0;
};

std::vector<int> Order(const ReadyQueue &queue) {
  std::vector<int> ids;
  for (const ReadyQueue::Member *m = queue.front(); m != nullptr; m = m->next) {
    ids.push_back(static_cast<const Item *>(m)->id);
  }
  // The links agree both ways.
  std::vector<int> backwards;
  for (const ReadyQueue::Member *m = queue.back(); m != nullptr; m = m->prev) {
    backwards.push_back(static_cast<const Item *>(m)->id);
  }
  std::reverse(backwards.begin(), backwards.end());
  EXPECT_EQ(ids, backwards);
  EXPECT_EQ(ids.size(), queue.size());
  return ids;
}

std::vector<Item> Items(int count) {
  std::vector<Item> items(static_cast<size_t>(count));
  for (int i = 0; i < count; ++i) items[static_cast<size_t>(i)].id = i;
  return items;
}

TEST(ReadyQueueTest, MembersComeOutInTheOrderTheyBecameReadyNotTheOrderTheyWereFound) {
  ReadyQueue queue;
  auto items = Items(3);
  queue.Add(&items[0], 300);  // found first, ready last
  queue.Add(&items[1], 100);
  queue.Add(&items[2], 200);
  EXPECT_EQ(Order(queue), (std::vector<int>{1, 2, 0}));
}

TEST(ReadyQueueTest, EqualTimesKeepTheOrderOfAdding) {
  ReadyQueue queue;
  auto items = Items(4);
  for (Item &item : items) queue.Add(&item, 50);
  EXPECT_EQ(Order(queue), (std::vector<int>{0, 1, 2, 3}));
  std::vector<ReadyQueue::Member *> batch;
  auto more = Items(3);
  for (Item &item : more) {
    item.id += 10;
    item.ready_ns = 50;
    batch.push_back(&item);
  }
  queue.AddAll(&batch);
  EXPECT_EQ(Order(queue), (std::vector<int>{0, 1, 2, 3, 10, 11, 12}));
}

TEST(ReadyQueueTest, AQueuedMemberWokenAgainKeepsItsPlace) {
  ReadyQueue queue;
  auto items = Items(3);
  queue.Add(&items[0], 10);
  queue.Add(&items[1], 20);
  queue.Add(&items[0], 30);  // new data while queued: the kernel leaves it where it is
  queue.Add(&items[2], 5);
  EXPECT_EQ(Order(queue), (std::vector<int>{2, 0, 1}));
  EXPECT_EQ(items[0].ready_ns, 10u);
}

TEST(ReadyQueueTest, AStillReadyMemberGoesBackToTheTailSoABusyOneCannotStarveTheOthers) {
  ReadyQueue queue;
  auto items = Items(3);
  queue.Add(&items[0], 1);  // always ready
  queue.Add(&items[1], 2);
  uint64_t now = 10;
  std::vector<int> reported;
  for (int call = 0; call < 6; ++call, ++now) {
    if (call == 2) queue.Add(&items[2], now);  // becomes ready while 0 is busy
    // One event per call (maxevents 1): the head is reported; still ready, it goes back.
    ReadyQueue::Member *head = queue.front();
    ASSERT_NE(head, nullptr);
    const int id = static_cast<Item *>(head)->id;
    reported.push_back(id);
    queue.Remove(head);
    if (id == 0) queue.Add(head, now);
  }
  EXPECT_EQ(reported, (std::vector<int>{0, 1, 0, 2, 0, 0}));
}

TEST(ReadyQueueTest, AddLastPutsAMemberBehindEveryQueuedOneWhateverItsTime) {
  ReadyQueue queue;
  auto items = Items(3);
  queue.Add(&items[0], 100);
  queue.Add(&items[1], 300);
  queue.AddLast(&items[2], 200);  // an older time: still last, with the last one's time
  EXPECT_EQ(Order(queue), (std::vector<int>{0, 1, 2}));
  EXPECT_EQ(items[2].ready_ns, 300u);
  queue.Remove(&items[2]);
  queue.AddLast(&items[2], 400);
  EXPECT_EQ(items[2].ready_ns, 400u);
  EXPECT_EQ(Order(queue), (std::vector<int>{0, 1, 2}));
}

TEST(ReadyQueueTest, RemoveTakesAnyMemberOutAndIgnoresOnesNotQueued) {
  ReadyQueue queue;
  auto items = Items(4);
  for (Item &item : items) queue.Add(&item, static_cast<uint64_t>(item.id));
  queue.Remove(&items[2]);
  queue.Remove(&items[2]);
  EXPECT_EQ(Order(queue), (std::vector<int>{0, 1, 3}));
  queue.Remove(&items[0]);
  queue.Remove(&items[3]);
  EXPECT_EQ(Order(queue), (std::vector<int>{1}));
  queue.Remove(&items[1]);
  EXPECT_TRUE(queue.empty());
  EXPECT_EQ(queue.front(), nullptr);
  EXPECT_EQ(queue.back(), nullptr);
  queue.Add(&items[3], 7);
  EXPECT_EQ(Order(queue), (std::vector<int>{3}));
  queue.Clear();
  EXPECT_TRUE(queue.empty());
  EXPECT_FALSE(items[3].queued);
}

TEST(ReadyQueueTest, ABatchMergesWhereEachWouldHaveBeenAddedAlone) {
  std::mt19937_64 rng(16);
  for (int trial = 0; trial < 200; ++trial) {
    ReadyQueue merged, one_by_one;
    auto a = Items(40), b = Items(40);
    // Some members queued already, with times spread over [0, 100).
    for (int i = 0; i < 20; ++i) {
      const uint64_t at = rng() % 100;
      merged.Add(&a[static_cast<size_t>(i)], at);
      one_by_one.Add(&b[static_cast<size_t>(i)], at);
    }
    // A batch in any order, with ties, and some members that are queued already.
    std::vector<ReadyQueue::Member *> batch;
    for (int i = 15; i < 40; ++i) {
      const uint64_t at = rng() % 100;
      if (!a[static_cast<size_t>(i)].queued) a[static_cast<size_t>(i)].ready_ns = at;
      batch.push_back(&a[static_cast<size_t>(i)]);
      one_by_one.Add(&b[static_cast<size_t>(i)], at);
    }
    // Adding one by one in batch order equals a stable sort of the batch merged in.
    merged.AddAll(&batch);
    ASSERT_EQ(Order(merged), Order(one_by_one)) << "trial " << trial;
    std::vector<uint64_t> times;
    for (const ReadyQueue::Member *m = merged.front(); m != nullptr; m = m->next) {
      times.push_back(m->ready_ns);
    }
    EXPECT_TRUE(std::is_sorted(times.begin(), times.end()));
  }
}

TEST(ReadyQueueTest, ALargeBatchFoundInReverseMergesInLinearSteps) {
  ReadyQueue queue;
  auto items = Items(100000);
  std::vector<ReadyQueue::Member *> batch;
  for (Item &item : items) {
    item.ready_ns = static_cast<uint64_t>(items.size() - size_t(item.id));
    batch.push_back(&item);
  }
  queue.AddAll(&batch);  // one by one from the tail: 5,000,000,000 steps
  ASSERT_EQ(queue.size(), items.size());
  EXPECT_EQ(static_cast<Item *>(queue.front())->id, 99999);
  EXPECT_EQ(static_cast<Item *>(queue.back())->id, 0);
}

TEST(ReadyQueueTest, InputReadySinceTrustsTheStampOnlyBetweenTheLastIdleLookAndNow) {
  EXPECT_EQ(InputReadySince(150, 100, 200), 150u);  // written after the look that saw it idle
  EXPECT_EQ(InputReadySince(50, 100, 200), 100u);   // a stamp of input read since: not that old
  EXPECT_EQ(InputReadySince(0, 100, 200), 200u);    // no stamp: when it was found
  EXPECT_EQ(InputReadySince(900, 100, 200), 200u);  // not in the future
  EXPECT_EQ(InputReadySince(900, 300, 200), 200u);
}

}  // namespace
}  // namespace loopfast

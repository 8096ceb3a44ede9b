"""RecordLog: the session's bounded record memory keeps whole-run positions."""

import pytest

from descent.engine.recordlog import RecordLog


def test_a_reader_that_keeps_up_sees_each_record_once():
    log, seen, read = RecordLog(capacity=5), 0, []
    for i in range(23):
        log.append(i)
        if i % 3 == 0:
            new = log[seen:]
            seen += len(new)
            read += new
    read += log[seen:]
    assert read == list(range(23))
    assert len(log) == 23 and log.dropped == 18


def test_only_the_newest_are_kept():
    log = RecordLog(capacity=4)
    assert not log and list(log) == []
    for i in range(10):
        log.append(i)
    assert list(log) == [6, 7, 8, 9]
    assert log[-1] == 9 and log[6] == 6 and log[0:8] == [6, 7]
    assert log[2:] == [6, 7, 8, 9]                    # a reader fallen behind gets what is kept
    with pytest.raises(IndexError, match="not kept"):
        log[5]

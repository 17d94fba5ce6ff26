"""Asking the brokers where the input partitions end, so that idleness is confirmed.

An input partition the consumer read to its end stops holding the event-time watermark once
it has been there for ``ENGAGEMENT_IDLE_TIMEOUT``. "At its end" is what the consumer's last
fetch said, and while a partition's leader is down or moving nobody fetches it: on a
three-node cluster that lost the leader of one input partition, the watermark ran days of
event time past that partition's events (which were waiting on the new leader) and deadlines
fired for users who had been active. So the ingest asks the partitions' leaders for their end
offsets every :data:`CONFIRM_EVERY_S`, without blocking its loop (the admin client answers
with futures, looked at on a later turn), and hands the answers to the watermark
(:meth:`agents.logic.watermarks.InputWatermark.answer`): an end past the offset the
partition's end-of-partition event gave means unread records; no answer means not confirmed,
and an unconfirmed idle partition holds the clock like an active one.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Hashable
from concurrent.futures import Future
from typing import Any, cast

from confluent_kafka import KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec  # type: ignore[attr-defined]

from agents.logic.frontier import InputFrontier
from agents.logic.watermarks import EndQuestion, InputWatermark
from streams.kafka import client_config
from streams.settings import Settings

log = logging.getLogger(__name__)
CONFIRM_EVERY_S = 0.2  # how often the brokers are asked about the partitions at their end
CONFIRM_TIMEOUT_S = 2.0  # a question unanswered this long: its partitions stay unconfirmed
Futures = dict[TopicPartition, "Future[Any]"]


class InputEnds:
    """One question at a time about the partitions the watermark takes to be at their end."""

    def __init__(self, settings: Settings, watermark: InputWatermark, frontier: InputFrontier):
        self._admin = AdminClient(client_config(settings))
        self._watermark = watermark
        self._frontier = frontier
        self._question: tuple[EndQuestion, Futures, float] | None = None
        self._asked_at = 0.0

    def turn(self) -> None:
        """Apply the answer to the last question once it is in; ask the next when due."""
        now = time.monotonic()
        if self._question is not None:
            question, futures, asked = self._question
            waiting = not all(future.done() for future in futures.values())
            if waiting and now - asked < CONFIRM_TIMEOUT_S:
                return
            self._question = None
            self._answer(question, futures)
        ended = self._watermark.at_end()
        if not ended or now - self._asked_at < CONFIRM_EVERY_S:
            return
        self._asked_at = now
        question = self._watermark.ask(int(time.time() * 1000))
        latest = OffsetSpec.latest()  # type: ignore[no-untyped-call]
        request = {TopicPartition(*cast("tuple[str, int]", key)): latest for key in ended}
        try:
            futures = self._admin.list_offsets(request, request_timeout=CONFIRM_TIMEOUT_S)
        except KafkaException as exc:
            log.debug("end offsets not asked: %s", exc)
            return
        self._question = (question, futures, now)

    def _answer(self, question: EndQuestion, futures: Futures) -> None:
        ends: dict[Hashable, int] = {
            (tp.topic, tp.partition): int(future.result().offset)
            for tp, future in futures.items()
            if future.done() and not future.cancelled() and future.exception() is None
        }
        for key in self._watermark.answer(question, ends):  # records on the broker not read yet
            self._frontier.has_unread(key)

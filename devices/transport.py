"""The one aiomqtt adapter: a session that survives broker restarts.

aiomqtt does not reconnect on its own. :class:`MqttLink` runs the reconnect loop with
capped exponential backoff and jitter, sets the last will at construction,
re-subscribes after every connect, and hands each inbound message to one handler
(normally a :class:`devices.router.Router`, a table keyed by parsed topic). A handler
that raises is logged and counted; it never ends the session.
"""

from __future__ import annotations

import logging
import random
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import aiomqtt
import anyio

from loa.clock import Clock
from loa.errors import BrokerError, LoaError

logger = logging.getLogger(__name__)
#: In-flight QoS 1 publishes past which aiomqtt logs a warning (one per publish).
PENDING_WARN = 1000

Handler = Callable[[str, bytes], Awaitable[None]]


@dataclass(frozen=True)
class LinkOptions:
    host: str
    port: int
    client_id: str
    username: str | None = None
    password: str | None = None
    keepalive_s: int = 30
    backoff_min_s: float = 0.2
    backoff_max_s: float = 10.0
    publish_timeout_s: float = 10.0
    will_topic: str | None = None
    will_payload: bytes = b""
    will_retain: bool = True
    farewell_payload: bytes | None = None  # published on the will topic at a clean stop
    #: Makes the will at each connect (instead of ``will_payload``), e.g. with a session id.
    will_factory: Callable[[], bytes] | None = None
    clean_session: bool = True  # False: the broker keeps QoS 1 messages while we are away
    subscriptions: tuple[tuple[str, int], ...] = field(default_factory=tuple)
    #: Speak TLS, trusting this CA file (a speaker provisioned with the broker's TLS URL).
    tls_ca: str | None = None
    #: Or the CA as PEM text (from a provisioning file); "" with ``tls`` = the system CAs.
    tls_ca_pem: str | None = None
    #: Topics where nobody may leave a retained message: one arriving retained there is
    #: dropped and cleared on the broker (an empty retained publish), and the empty
    #: message that clearing echoes back is dropped too.
    retained_refused: Callable[[str], bool] | None = None


def _tls_context(o: LinkOptions) -> ssl.SSLContext | None:
    if o.tls_ca:
        return ssl.create_default_context(cafile=o.tls_ca)
    if o.tls_ca_pem is not None:
        return ssl.create_default_context(cadata=o.tls_ca_pem or None)
    return None


class MqttLink:
    """A long-lived MQTT session. Run :meth:`run` in a task group; publish from anywhere."""

    def __init__(self, options: LinkOptions, handler: Handler, clock: Clock) -> None:
        self.options = options
        self._handler = handler
        self._clock = clock
        self._client: aiomqtt.Client | None = None
        self._connected = anyio.Event()
        self._subs: dict[str, int] = dict(options.subscriptions)
        self._on_connect: list[Callable[[], Awaitable[None]]] = []
        self.connects = 0
        self.handler_errors = 0
        self.retained_cleared = 0  # retained messages cleared where none may be left
        self._clearing: set[str] = set()
        self._rng = random.Random(options.client_id)  # noqa: S311 - jitter, not crypto

    @property
    def connected(self) -> bool:
        return self._client is not None

    def on_connect(self, callback: Callable[[], Awaitable[None]]) -> None:
        """Run ``callback`` after every (re)connect, once subscriptions are in place."""
        self._on_connect.append(callback)

    async def wait_connected(self, timeout: float) -> None:
        with anyio.fail_after(timeout):
            await self._connected.wait()

    def _make_client(self) -> aiomqtt.Client:
        o = self.options
        will = None
        if o.will_topic is not None:
            payload = o.will_factory() if o.will_factory is not None else o.will_payload
            will = aiomqtt.Will(o.will_topic, payload, qos=1, retain=o.will_retain)
        client = aiomqtt.Client(
            o.host,
            o.port,
            identifier=o.client_id,
            username=o.username,
            password=o.password,
            keepalive=o.keepalive_s,
            will=will,
            clean_session=o.clean_session,
            timeout=o.publish_timeout_s,
            tls_context=_tls_context(o),
        )
        # aiomqtt logs a warning for every publish made while more than 10 await their
        # PUBACK. The controller does that on purpose (a frame to many groups, configs
        # in batches); a backlog worth a line is one the broker is not taking.
        client.pending_calls_threshold = PENDING_WARN
        return client

    async def run(self) -> None:
        """Connect, serve, reconnect; returns only when cancelled."""
        backoff = self.options.backoff_min_s
        while True:
            try:
                async with self._make_client() as client:
                    for topic, qos in list(self._subs.items()):
                        await client.subscribe(topic, qos)
                    self._client = client
                    self.connects += 1
                    backoff = self.options.backoff_min_s
                    logger.info("mqtt %s connected (#%d)", self.options.client_id, self.connects)
                    for callback in self._on_connect:
                        try:
                            await callback()
                        except LoaError as exc:  # e.g. the broker went away again
                            logger.warning(
                                "mqtt %s: on-connect step failed: %s",
                                self.options.client_id,
                                exc.message,
                            )
                    self._connected.set()
                    try:
                        async for message in client.messages:
                            payload = message.payload
                            if not isinstance(payload, bytes | bytearray):
                                payload = b"" if payload is None else str(payload).encode()
                            topic = message.topic.value
                            if await self._refuse_retained(client, topic, message.retain, payload):
                                continue
                            await self._dispatch(topic, bytes(payload))
                    except anyio.get_cancelled_exc_class():
                        await self._farewell(client)
                        raise
            except aiomqtt.MqttError as exc:
                first = backoff == self.options.backoff_min_s
                logger.log(
                    logging.WARNING if first else logging.DEBUG,
                    "mqtt %s: %s; retrying",
                    self.options.client_id,
                    exc,
                )
            finally:
                self._client = None
                if self._connected.is_set():
                    self._connected = anyio.Event()
            delay = min(backoff, self.options.backoff_max_s)
            await self._clock.sleep(delay * (0.5 + self._rng.random() / 2))
            backoff = min(backoff * 2, self.options.backoff_max_s)

    async def _farewell(self, client: aiomqtt.Client) -> None:
        """On a clean stop, say goodbye on the will topic (bounded, shielded)."""
        o = self.options
        if o.will_topic is None or o.farewell_payload is None:
            return
        with anyio.CancelScope(shield=True), anyio.move_on_after(1.0):
            await client.publish(o.will_topic, o.farewell_payload, qos=1, retain=o.will_retain)

    async def _refuse_retained(
        self, client: aiomqtt.Client, topic: str, retain: bool, payload: bytes | bytearray
    ) -> bool:
        """True when the message is a refused retained one (then cleared) or the echo
        of our own clearing (an empty message on a topic we just cleared)."""
        if not payload and topic in self._clearing:
            self._clearing.discard(topic)
            return True
        refused = self.options.retained_refused
        if not retain or not payload or refused is None or not refused(topic):
            return False
        self.retained_cleared += 1
        logger.warning("mqtt: cleared a retained message left on %s", topic)
        if len(self._clearing) < 10_000:
            self._clearing.add(topic)
        await client.publish(topic, b"", qos=1, retain=True)
        return True

    async def _dispatch(self, topic: str, payload: bytes) -> None:
        try:
            await self._handler(topic, payload)
        except Exception:
            self.handler_errors += 1
            logger.exception("mqtt %s: handler failed on %s", self.options.client_id, topic)

    async def subscribe(self, topic: str, qos: int = 1) -> None:
        """Subscribe now (if connected) and after every reconnect."""
        self._subs[topic] = qos
        client = self._client
        if client is not None:
            await client.subscribe(topic, qos)

    async def sweep_retained(self, filters: tuple[str, ...], every_s: float) -> None:
        """Every ``every_s``, subscribe again to ``filters`` (already subscribed): the
        broker then re-sends what is retained there without interrupting the flow
        (MQTT 3.1.1, 3.8.4), so a retained message left where none may be is found and
        cleared within ``every_s``, not only at the next reconnect. Runs until cancelled."""
        while True:
            await self._clock.sleep(every_s)
            client = self._client
            if client is None:
                continue
            for topic in filters:
                qos = self._subs.get(topic)
                if qos is None:
                    continue
                try:
                    await client.subscribe(topic, qos)
                except aiomqtt.MqttError:
                    break  # the session is dropping; the run loop reconnects

    async def unsubscribe(self, topic: str) -> None:
        self._subs.pop(topic, None)
        client = self._client
        if client is not None:
            await client.unsubscribe(topic)

    async def publish(
        self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False
    ) -> None:
        """Publish, riding out a reconnect (bounded); BrokerError if no broker comes back."""
        deadline = self._clock.monotonic() + self.options.publish_timeout_s
        while True:
            remaining = deadline - self._clock.monotonic()
            client = self._client
            if client is None:
                try:
                    if remaining <= 0:
                        raise TimeoutError
                    await self.wait_connected(remaining)
                except TimeoutError:
                    raise BrokerError(
                        f"MQTT broker {self.options.host}:{self.options.port} unreachable"
                    ) from None
                continue
            try:
                await client.publish(topic, payload, qos=qos, retain=retain)
                return
            except aiomqtt.MqttError as exc:
                if remaining <= 0:
                    raise BrokerError(f"publish to {topic} failed: {exc}") from exc
                # The session is dropping; the run loop will notice and reconnect.
                await self._clock.sleep(min(0.05, remaining))

//! How instances sharing a PostgreSQL database keep their caches exact.
//!
//! Messages on one channel (PostgreSQL `LISTEN`/`NOTIFY`, which delivers to
//! every listener in commit order):
//! - `hb <id> <ms>`: a heartbeat; `ms` is the sender's monotonic time of
//!   sending. An instance trusts its cache only while the *send time* of
//!   the latest of its own heartbeats it has heard back is younger than
//!   `stale_after`. A listener that lags (a slow link, a stalled proxy)
//!   hears old heartbeats, however regularly they arrive, and stops
//!   trusting its cache.
//! - `chg <txid> <keys>`: sent by database triggers at the commit of any
//!   change to who may use which token, from Tollgate or from an SQL
//!   console, naming what changed (see `changes`): every instance, the one
//!   that made the change included, evicts the entries concerned, or
//!   everything when the keys can not be read exactly.
//! - `inv <txid>`: sent by Tollgate last in each transaction of its own that
//!   changes token rights, so it is delivered after that transaction's
//!   `chg` messages. Every other instance answers `ack <txid> <id>`: having
//!   heard the `inv`, it has evicted what the change concerns.
//!
//! The instance that made a change answers it once it has heard its own
//! `inv` (so it has evicted what its change concerns, and knows every peer whose heartbeat committed before the
//! change) and every such live peer has acknowledged. If that does not
//! happen, it answers `stale_after + margin` after the commit instead: a peer
//! (the changing instance itself included) that has not processed the
//! `chg` and `inv` messages by then heard its latest own heartbeat from
//! before the commit, so it no longer trusts its cache. Either way no
//! instance answers from a cache older than the change once the change is
//! answered, and the worst-case answer time is `stale_after + margin` after
//! the commit.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;

use super::changes::{Change, Eviction, parse_keys};
use crate::clock::Clock;

/// Where messages go: to every instance listening, this one included, in
/// commit order. `publish` must not block; a message it can not send is
/// lost, which only makes instances wait or bypass their caches.
pub trait Transport: Send + Sync {
    fn publish(&self, payload: String);
}

#[derive(Debug, Clone, Copy)]
pub struct Settings {
    pub heartbeat_every: Duration,
    /// How old the latest heard own heartbeat may be for the cache to be used.
    pub stale_after: Duration,
    /// Added to `stale_after` when a change waits for a silent peer.
    pub margin: Duration,
    /// Peers not heard for this long are no longer waited for; longer than
    /// `stale_after`, so such a peer can not trust its cache any more.
    pub peer_forgotten_after: Duration,
    /// Bounds on the bookkeeping.
    pub max_peers: usize,
    pub max_waits: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            heartbeat_every: Duration::from_millis(500),
            stale_after: Duration::from_secs(2),
            margin: Duration::from_millis(250),
            peer_forgotten_after: Duration::from_secs(5),
            max_peers: 1_024,
            max_waits: 1_024,
        }
    }
}

/// What the cache must do after a message.
#[derive(Debug, PartialEq, Eq)]
pub enum Reaction {
    Nothing,
    /// Evict the entries these changes concern.
    Evict(Vec<Change>),
    /// Forget everything.
    Clear,
}

/// Where a change stands.
#[derive(Debug, PartialEq, Eq)]
pub enum WaitStatus {
    /// Every live peer has cleared: answer.
    Done,
    /// Not yet; at the latest at this monotonic time.
    Pending(Duration),
    /// The fallback time has come: every silent peer distrusts its cache.
    TimedOut,
}

struct Wait {
    heard_own: bool,
    expected: Vec<String>,
    acked: HashSet<String>,
}

#[derive(Default)]
struct State {
    listening: bool,
    /// Send time of the newest own heartbeat heard since listening began.
    heard_own: Option<Duration>,
    /// Peer id → when it was last heard (monotonic).
    peers: HashMap<String, Duration>,
    /// Set when a peer could not be tracked (too many); no change trusts
    /// its peer list until this is older than `peer_forgotten_after`.
    untracked_peer_at: Option<Duration>,
    waits: HashMap<u64, Wait>,
}

pub struct Protocol {
    id: String,
    clock: Arc<dyn Clock>,
    settings: Settings,
    transport: Box<dyn Transport>,
    state: Mutex<State>,
    progress: Notify,
    acks: AtomicU64,
    timeouts: AtomicU64,
}

impl Protocol {
    pub fn new(
        id: String,
        clock: Arc<dyn Clock>,
        settings: Settings,
        transport: Box<dyn Transport>,
    ) -> Self {
        Self {
            id,
            clock,
            settings,
            transport,
            state: Mutex::new(State::default()),
            progress: Notify::new(),
            acks: AtomicU64::new(0),
            timeouts: AtomicU64::new(0),
        }
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Acknowledgements received for this instance's changes.
    pub fn acks(&self) -> u64 {
        self.acks.load(Ordering::Relaxed)
    }

    /// Changes answered at the fallback time, without every acknowledgement.
    pub fn timeouts(&self) -> u64 {
        self.timeouts.load(Ordering::Relaxed)
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // The state stays consistent at every step, so a panic elsewhere
        // while holding the lock leaves nothing half-done.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sends a heartbeat stamped with the time of sending.
    pub fn heartbeat(&self) {
        let ms = self.clock.monotonic().as_millis();
        self.transport.publish(format!("hb {} {ms}", self.id));
    }

    /// The listener is connected: trust begins with the next own heartbeat heard.
    pub fn listening(&self) {
        let mut state = self.state();
        state.listening = true;
        state.heard_own = None;
    }

    /// The listener is gone: notifications may be missed from now on.
    pub fn lost(&self) {
        let mut state = self.state();
        state.listening = false;
        state.heard_own = None;
    }

    /// Whether the cache may answer now.
    pub fn trusted(&self) -> bool {
        let now = self.clock.monotonic();
        let state = self.state();
        state.listening
            && state
                .heard_own
                .is_some_and(|sent| now.saturating_sub(sent) < self.settings.stale_after)
    }

    /// Other instances heard from recently enough to be waited for.
    pub fn live_peers(&self) -> usize {
        let now = self.clock.monotonic();
        let forgotten = self.settings.peer_forgotten_after;
        self.state()
            .peers
            .values()
            .filter(|seen| now.saturating_sub(**seen) < forgotten)
            .count()
    }

    pub fn on_message(&self, payload: &str) -> Reaction {
        let now = self.clock.monotonic();
        let mut words = payload.split(' ');
        match (words.next(), words.next(), words.next(), words.next()) {
            (Some("hb"), Some(from), Some(ms), None) => {
                let Ok(ms) = ms.parse::<u64>() else {
                    return Reaction::Nothing;
                };
                let mut state = self.state();
                if from == self.id {
                    if state.listening {
                        let sent = Duration::from_millis(ms);
                        state.heard_own = Some(state.heard_own.map_or(sent, |h| h.max(sent)));
                    }
                } else {
                    self.saw(&mut state, from, now);
                }
                Reaction::Nothing
            }
            (Some("chg"), Some(_txid), Some(keys), None) => match parse_keys(keys) {
                Eviction::Some(changes) => Reaction::Evict(changes),
                Eviction::All => Reaction::Clear,
            },
            // Surely a change, but not one that can be read: forget everything.
            (Some("chg"), ..) => Reaction::Clear,
            (Some("inv"), Some(txid), None, None) => {
                let Ok(txid) = txid.parse::<u64>() else {
                    // Unreadable, but surely a change: clear.
                    return Reaction::Clear;
                };
                let mut state = self.state();
                let forgotten = self.settings.peer_forgotten_after;
                let untracked = state
                    .untracked_peer_at
                    .is_some_and(|at| now.saturating_sub(at) < forgotten);
                let live: Vec<String> = state
                    .peers
                    .iter()
                    .filter(|(_, seen)| now.saturating_sub(**seen) < forgotten)
                    .map(|(id, _)| id.clone())
                    .collect();
                if let Some(wait) = state.waits.get_mut(&txid) {
                    // Our own change, heard back: every peer heard before it
                    // is one to wait for.
                    wait.heard_own = !untracked;
                    wait.expected = live;
                    drop(state);
                    self.progress.notify_waiters();
                    Reaction::Nothing
                } else {
                    drop(state);
                    // Its `chg` messages came first: evicted already.
                    self.transport.publish(format!("ack {txid} {}", self.id));
                    Reaction::Nothing
                }
            }
            (Some("ack"), Some(txid), Some(from), None) => {
                let mut state = self.state();
                self.saw(&mut state, from, now);
                let max_peers = self.settings.max_peers;
                if let Ok(txid) = txid.parse::<u64>()
                    && let Some(wait) = state.waits.get_mut(&txid)
                    && wait.acked.len() < max_peers
                {
                    wait.acked.insert(from.to_owned());
                    drop(state);
                    self.acks.fetch_add(1, Ordering::Relaxed);
                    self.progress.notify_waiters();
                }
                Reaction::Nothing
            }
            _ => {
                tracing::warn!("ignoring an unknown message on the token channel");
                Reaction::Nothing
            }
        }
    }

    fn saw(&self, state: &mut State, peer: &str, now: Duration) {
        if peer == self.id {
            return;
        }
        if let Some(seen) = state.peers.get_mut(peer) {
            *seen = now;
            return;
        }
        let forgotten = self.settings.peer_forgotten_after;
        state
            .peers
            .retain(|_, seen| now.saturating_sub(*seen) < forgotten);
        if state.peers.len() < self.settings.max_peers {
            state.peers.insert(peer.to_owned(), now);
        } else {
            state.untracked_peer_at = Some(now);
        }
    }

    /// Before committing change `txid`: start collecting its
    /// acknowledgements. Without room, the change will take the fallback.
    pub fn register(&self, txid: u64) {
        let mut state = self.state();
        if state.waits.len() < self.settings.max_waits {
            state.waits.insert(
                txid,
                Wait {
                    heard_own: false,
                    expected: Vec::new(),
                    acked: HashSet::new(),
                },
            );
        }
    }

    /// Forgets change `txid` (answered, or its transaction failed).
    pub fn finish(&self, txid: u64) {
        self.state().waits.remove(&txid);
    }

    /// Where change `txid`, committed at monotonic time `committed`, stands.
    pub fn status(&self, txid: u64, committed: Duration) -> WaitStatus {
        let now = self.clock.monotonic();
        let done = self.state().waits.get(&txid).is_some_and(|wait| {
            wait.heard_own && wait.expected.iter().all(|p| wait.acked.contains(p))
        });
        if done {
            return WaitStatus::Done;
        }
        let fallback = committed + self.settings.stale_after + self.settings.margin;
        if now >= fallback {
            WaitStatus::TimedOut
        } else {
            WaitStatus::Pending(fallback)
        }
    }

    /// Waits until change `txid` may be answered (see the module notes).
    pub async fn wait(&self, txid: u64, committed: Duration) {
        loop {
            let progress = self.progress.notified();
            match self.status(txid, committed) {
                WaitStatus::Done => return,
                WaitStatus::TimedOut => {
                    self.timeouts.fetch_add(1, Ordering::Relaxed);
                    let missing = self.missing(txid);
                    tracing::warn!(
                        ?missing,
                        "a token change was not acknowledged by every instance; answered after the staleness bound"
                    );
                    return;
                }
                WaitStatus::Pending(until) => {
                    let left = until.saturating_sub(self.clock.monotonic());
                    let _ = tokio::time::timeout(left, progress).await;
                }
            }
        }
    }

    fn missing(&self, txid: u64) -> Vec<String> {
        let state = self.state();
        match state.waits.get(&txid) {
            Some(wait) if wait.heard_own => wait
                .expected
                .iter()
                .filter(|p| !wait.acked.contains(*p))
                .cloned()
                .collect(),
            _ => vec!["(own notification not heard back)".to_owned()],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use std::collections::VecDeque;

    /// A channel in memory: everything published waits in one queue, in
    /// order, until the test delivers it.
    #[derive(Clone, Default)]
    struct Bus(Arc<Mutex<VecDeque<String>>>);

    impl Transport for Bus {
        fn publish(&self, payload: String) {
            self.0.lock().unwrap().push_back(payload);
        }
    }

    impl Bus {
        fn take(&self) -> Vec<String> {
            self.0.lock().unwrap().drain(..).collect()
        }
    }

    fn instance(id: &str, clock: &Arc<ManualClock>, bus: &Bus) -> Protocol {
        let clock: Arc<dyn Clock> = clock.clone();
        let p = Protocol::new(id.into(), clock, Settings::default(), Box::new(bus.clone()));
        p.listening();
        p
    }

    /// Instances a, b and c on one bus and clock, each having heard every
    /// heartbeat: all three trust their caches and know each other.
    fn three_live_instances() -> (Arc<ManualClock>, Bus, [Protocol; 3]) {
        let clock = Arc::new(ManualClock::new(0));
        let bus = Bus::default();
        let all = [
            instance("a", &clock, &bus),
            instance("b", &clock, &bus),
            instance("c", &clock, &bus),
        ];
        for p in &all {
            p.heartbeat();
        }
        deliver(&bus, &[&all[0], &all[1], &all[2]]);
        (clock, bus, all)
    }

    /// Delivers everything on the bus to `to`, again and again until quiet;
    /// returns what each instance (by its place in `to`) had to do.
    fn deliver(bus: &Bus, to: &[&Protocol]) -> Vec<(usize, Reaction)> {
        let mut reactions = Vec::new();
        loop {
            let messages = bus.take();
            if messages.is_empty() {
                return reactions;
            }
            for m in &messages {
                for (i, p) in to.iter().enumerate() {
                    match p.on_message(m) {
                        Reaction::Nothing => {}
                        reaction => reactions.push((i, reaction)),
                    }
                }
            }
        }
    }

    const MS: fn(u64) -> Duration = Duration::from_millis;

    #[test]
    fn trust_needs_a_recent_own_heartbeat_heard_back() {
        let clock = Arc::new(ManualClock::new(0));
        let bus = Bus::default();
        let a = instance("a", &clock, &bus);
        assert!(!a.trusted(), "no heartbeat heard yet");
        a.heartbeat();
        deliver(&bus, &[&a]);
        assert!(a.trusted());
        clock.advance(MS(1_999));
        assert!(a.trusted());
        clock.advance(MS(1));
        assert!(!a.trusted(), "2 s after the heartbeat was sent");
        a.heartbeat();
        deliver(&bus, &[&a]);
        assert!(a.trusted());
        a.lost();
        assert!(!a.trusted(), "a lost listener is never trusted");
    }

    #[test]
    fn a_lagging_listener_stops_trusting_though_heartbeats_keep_arriving() {
        let clock = Arc::new(ManualClock::new(0));
        let bus = Bus::default();
        let b = instance("b", &clock, &bus);
        // B's link delays everything by 5 s: each heartbeat, sent every
        // 500 ms, is heard 5 s later, so one arrives every 500 ms.
        let mut in_flight = VecDeque::new();
        for tick in 0..30 {
            b.heartbeat();
            in_flight.extend(bus.take().into_iter().map(|m| (tick + 10, m)));
            while in_flight.front().is_some_and(|(due, _)| *due <= tick) {
                let (_, m) = in_flight.pop_front().unwrap();
                b.on_message(&m);
            }
            if tick >= 10 {
                assert!(!b.trusted(), "tick {tick}: heard a 5 s old heartbeat");
            }
            clock.advance(MS(500));
        }
    }

    #[test]
    fn a_change_is_answered_once_every_live_peer_has_evicted_and_acknowledged() {
        let (clock, bus, [a, b, c]) = three_live_instances();
        a.register(41);
        let committed = clock.monotonic();
        assert_eq!(
            a.status(41, committed),
            WaitStatus::Pending(committed + MS(2_250)),
            "own inv not heard yet"
        );
        // What the commit delivers: the trigger's keys, then Tollgate's end marker.
        bus.publish("chg 41 token:7,member:1:3".into());
        bus.publish("inv 41".into());
        let evicted = vec![
            Change::Token(7),
            Change::Member {
                workspace: 1,
                user: 3,
            },
        ];
        assert_eq!(
            deliver(&bus, &[&a, &b, &c]),
            [0, 1, 2].map(|i| (i, Reaction::Evict(evicted.clone()))),
            "every instance evicts exactly what changed, and nothing is cleared"
        );
        assert_eq!(a.status(41, committed), WaitStatus::Done);
        assert_eq!(a.acks(), 2);
        a.finish(41);
        assert!(a.state().waits.is_empty());
    }

    #[test]
    fn a_change_that_can_not_be_read_exactly_clears_everything() {
        let (_clock, bus, [a, ..]) = three_live_instances();
        for payload in [
            "chg 9 *",
            "chg 9 token:1,session:2",
            "chg 9 token:one",
            "chg 9",
            "chg 9 token:1 user:2",
            "inv nine",
        ] {
            assert_eq!(a.on_message(payload), Reaction::Clear, "{payload}");
        }
        assert!(bus.take().is_empty(), "nothing to acknowledge");
        // A peer's end marker alone evicts nothing (its keys came before).
        assert_eq!(a.on_message("inv 9"), Reaction::Nothing);
        assert_eq!(bus.take(), ["ack 9 a"]);
    }

    #[test]
    fn a_missing_acknowledgement_holds_the_answer_until_the_peer_distrusts_its_cache() {
        let (clock, bus, [a, b, c]) = three_live_instances();
        assert!(c.trusted());
        clock.advance(MS(100));
        // C's listener stalls from here on: it hears nothing more.
        a.register(42);
        let committed = clock.monotonic();
        bus.publish("inv 42".into());
        deliver(&bus, &[&a, &b]);
        assert_eq!(
            a.status(42, committed),
            WaitStatus::Pending(committed + MS(2_250))
        );
        // Until the fallback time C may still trust its (stale) cache...
        clock.advance(MS(1_800));
        assert!(c.trusted());
        assert!(matches!(a.status(42, committed), WaitStatus::Pending(_)));
        // ...and by then it no longer does, so A may answer.
        clock.advance(MS(450));
        assert!(!c.trusted());
        assert_eq!(a.status(42, committed), WaitStatus::TimedOut);
    }

    #[test]
    fn a_change_not_heard_back_waits_for_the_fallback_even_without_peers() {
        let clock = Arc::new(ManualClock::new(0));
        let bus = Bus::default();
        let a = instance("a", &clock, &bus);
        a.register(43);
        let committed = clock.monotonic();
        assert!(matches!(a.status(43, committed), WaitStatus::Pending(_)));
        clock.advance(MS(2_250));
        assert_eq!(a.status(43, committed), WaitStatus::TimedOut);
    }

    #[test]
    fn a_peer_silent_for_longer_than_it_could_trust_is_not_waited_for() {
        let clock = Arc::new(ManualClock::new(0));
        let bus = Bus::default();
        let (a, b) = (instance("a", &clock, &bus), instance("b", &clock, &bus));
        b.heartbeat();
        deliver(&bus, &[&a, &b]);
        clock.advance(MS(5_000));
        assert!(!b.trusted());
        a.register(44);
        bus.publish("inv 44".into());
        deliver(&bus, &[&a]);
        assert_eq!(a.status(44, clock.monotonic()), WaitStatus::Done);
    }

    #[test]
    fn peers_and_waits_are_bounded() {
        let clock = Arc::new(ManualClock::new(0));
        let bus = Bus::default();
        let settings = Settings {
            max_peers: 2,
            max_waits: 1,
            ..Settings::default()
        };
        let a = Protocol::new("a".into(), clock.clone(), settings, Box::new(bus.clone()));
        a.listening();
        for peer in ["p1", "p2", "p3"] {
            a.on_message(&format!("hb {peer} 0"));
        }
        assert_eq!(a.state().peers.len(), 2);
        a.register(1);
        a.register(2);
        assert_eq!(a.state().waits.len(), 1);
        // With a peer it could not track, even a fully acknowledged change
        // takes the fallback.
        a.on_message("inv 1");
        a.on_message("ack 1 p1");
        a.on_message("ack 1 p2");
        assert!(matches!(
            a.status(1, clock.monotonic()),
            WaitStatus::Pending(_)
        ));
    }
}

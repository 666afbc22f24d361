//! The link simulator, end to end: real sockets on loopback, real timers.
//!
//! Each test holds both ends of a proxied connection: the client socket
//! connected to the simulator and the server socket the test accepted from
//! its own upstream listener. Timings are measured with the same clock the
//! simulator uses, and every test is bounded by [`within`].

use std::future::Future;
use std::io;
use std::time::Duration;

use lianxin_tests::linksim::{CutPlan, Direction, LinkSim, Profile};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;

const MS: Duration = Duration::from_millis(1);

/// Fails the test if `test` takes longer than ten seconds.
async fn within<T>(test: impl Future<Output = io::Result<T>>) -> io::Result<T> {
    tokio::time::timeout(Duration::from_secs(10), test)
        .await
        .expect("test timed out")
}

/// A simulator in front of an upstream listener the test accepts from itself.
struct Link {
    sim: LinkSim,
    upstream: TcpListener,
}

impl Link {
    async fn start(profile: Profile, seed: u64) -> io::Result<Link> {
        let upstream = TcpListener::bind("127.0.0.1:0").await?;
        let sim = LinkSim::start(upstream.local_addr()?, profile, seed).await?;
        Ok(Link { sim, upstream })
    }

    /// A new connection through the simulator: (client end, server end).
    async fn connect(&self) -> io::Result<(TcpStream, TcpStream)> {
        let client = TcpStream::connect(self.sim.addr()).await?;
        let (server, _) = self.upstream.accept().await?;
        client.set_nodelay(true)?;
        server.set_nodelay(true)?;
        Ok((client, server))
    }
}

/// A fast profile for tests that need shaping but not slowness.
fn fast(rtt: Duration, loss: f64) -> Profile {
    Profile::new("test_fast", 10_000_000, 10_000_000, rtt, loss)
}

/// A named profile without its loss, for tests of exact timings.
fn lossless(profile: Profile) -> Profile {
    Profile { loss: 0.0, ..profile }
}

/// Recognisable bytes: a wrong order or a lost byte changes the content.
fn pattern(len: usize, salt: u8) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8 ^ salt).collect()
}

/// Reads until the peer closes the connection, cleanly or not.
async fn read_until_closed(socket: &mut TcpStream) -> Vec<u8> {
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match socket.read(&mut buf).await {
            Ok(0) | Err(_) => return received,
            Ok(n) => received.extend_from_slice(&buf[..n]),
        }
    }
}

/// Sends `request` from the client, answers it with `response` from the
/// server, and returns how long the client waited.
async fn exchange(
    client: &mut TcpStream,
    server: &mut TcpStream,
    request: &[u8],
    response: &[u8],
) -> io::Result<Duration> {
    let start = Instant::now();
    client.write_all(request).await?;
    let mut got = vec![0; request.len()];
    server.read_exact(&mut got).await?;
    assert_eq!(got, request);
    server.write_all(response).await?;
    let mut got = vec![0; response.len()];
    client.read_exact(&mut got).await?;
    assert_eq!(got, response);
    Ok(start.elapsed())
}

/// Asserts `measured` is `expected`, give or take: the simulator is never
/// early (beyond rounding), and may be late by `tolerance` (a fraction) on a
/// busy machine.
fn assert_about(what: &str, measured: Duration, expected: Duration, tolerance: f64) {
    let earliest = expected.saturating_sub(2 * MS);
    let latest = expected.mul_f64(1.0 + tolerance);
    assert!(
        (earliest..=latest).contains(&measured),
        "{what}: took {measured:?}, expected {expected:?} (-2 ms, +{:.0}%)",
        tolerance * 100.0
    );
}

#[tokio::test]
async fn loopback_passes_bytes_unchanged_both_ways() -> io::Result<()> {
    within(async {
        let link = Link::start(Profile::loopback(), 1).await?;
        let (client, server) = link.connect().await?;
        let echo = tokio::spawn(async move {
            let (mut from, mut to) = server.into_split();
            tokio::io::copy(&mut from, &mut to).await
        });
        let sent = pattern(300_000, 0x5a);
        let (mut client_read, mut client_write) = client.into_split();
        let (wrote, echoed) = tokio::join!(
            async {
                client_write.write_all(&sent).await?;
                client_write.shutdown().await
            },
            async {
                let mut echoed = Vec::new();
                client_read.read_to_end(&mut echoed).await.map(|_| echoed)
            }
        );
        wrote?;
        assert!(echoed? == sent, "the echo differs from what was sent");
        assert_eq!(echo.await.expect("echo task")?, 300_000);

        let stats = link.sim.stats();
        assert_eq!((stats.bytes_up, stats.bytes_down), (300_000, 300_000));
        assert_eq!((stats.connections, stats.cuts, stats.retransmissions), (1, 0, 0));
        Ok(())
    })
    .await
}

#[tokio::test]
async fn a_transfer_takes_its_serialisation_time_plus_half_the_rtt() -> io::Result<()> {
    within(async {
        // EDGE without its loss: 20 kB take 800 ms up and 667 ms down, plus
        // 420 ms of one-way delay; slow enough that a busy machine's
        // scheduling delays stay well inside the tolerance.
        let profile = lossless(Profile::edge_lossy());
        let link = Link::start(profile.clone(), 1).await?;
        let (mut client, mut server) = link.connect().await?;
        // Get the handshake out of the way: the link is idle after this.
        exchange(&mut client, &mut server, b"?", b"!").await?;

        let size = 20_000;
        for direction in [Direction::Up, Direction::Down] {
            let (sender, receiver) = match direction {
                Direction::Up => (&mut client, &mut server),
                Direction::Down => (&mut server, &mut client),
            };
            let sent = pattern(size, direction as u8);
            let mut received = vec![0; size];
            let start = Instant::now();
            let (wrote, read) = tokio::join!(sender.write_all(&sent), receiver.read_exact(&mut received));
            let took = start.elapsed();
            wrote?;
            read?;
            assert!(received == sent, "{direction}: bytes changed on the way");
            let serialisation = Duration::from_secs_f64(size as f64 * 8.0 / profile.bps(direction) as f64);
            assert_about(
                &format!("20 kB {direction}"),
                took,
                serialisation + profile.rtt / 2,
                0.15,
            );
        }
        Ok(())
    })
    .await
}

#[tokio::test]
async fn a_small_request_is_answered_after_one_rtt_plus_the_handshake_on_a_new_connection() -> io::Result<()> {
    within(async {
        let profile = lossless(Profile::edge_lossy());
        let rtt = profile.rtt;
        let link = Link::start(profile, 1).await?;

        // The first request on a new connection waits for the simulated
        // handshake: it reaches the server after 1.5 round trips.
        let start = Instant::now();
        let (mut client, mut server) = link.connect().await?;
        client.write_all(b"hello").await?;
        server.read_exact(&mut [0; 5]).await?;
        assert_about("first request", start.elapsed(), rtt * 3 / 2, 0.15);
        server.write_all(b"hi").await?;
        client.read_exact(&mut [0; 2]).await?;
        assert_about("first exchange", start.elapsed(), rtt * 2, 0.15);

        for i in 0..2 {
            let took = exchange(&mut client, &mut server, b"ping ping!", b"pong pong!").await?;
            assert_about(&format!("exchange {i}"), took, rtt, 0.15);
        }
        Ok(())
    })
    .await
}

/// Per-exchange durations of `count` small exchanges on a fresh connection,
/// and the simulator's retransmission count.
async fn lossy_ping_pong(profile: &Profile, seed: u64, count: usize) -> io::Result<(Vec<Duration>, u64)> {
    let link = Link::start(profile.clone(), seed).await?;
    let (mut client, mut server) = link.connect().await?;
    let mut durations = Vec::new();
    for _ in 0..count {
        durations.push(exchange(&mut client, &mut server, &[1; 100], &[2; 100]).await?);
    }
    Ok((durations, link.sim.stats().retransmissions))
}

#[tokio::test]
async fn losses_stall_the_stream_the_same_way_for_the_same_seed() -> io::Result<()> {
    within(async {
        // Timeouts much longer than any scheduling hiccup, so that each stall
        // is recognisable in the timings even on a busy machine.
        let mut profile = fast(20 * MS, 0.5);
        profile.rto = 200 * MS;
        let count = 8;
        let (a, again, b) = tokio::join!(
            lossy_ping_pong(&profile, 7, count),
            lossy_ping_pong(&profile, 7, count),
            lossy_ping_pong(&profile, 8, count),
        );
        let mut runs = Vec::new();
        for (seed, run) in [(7, a), (7, again), (8, b)] {
            let (durations, retransmissions) = run?;
            // Each exchange takes one round trip (two for the first, which
            // waits for the handshake) plus one timeout per lost packet: a
            // stall either way holds the exchange up, nothing else does.
            let mut stalls = Vec::new();
            for (i, took) in durations.iter().enumerate() {
                let base = profile.rtt * if i == 0 { 2 } else { 1 };
                let lost = (took.saturating_sub(base).as_secs_f64() / profile.rto.as_secs_f64()).round() as u32;
                let expected = base + profile.rto * lost;
                assert!(
                    expected.saturating_sub(2 * MS) <= *took && *took < expected + profile.rto / 3,
                    "seed {seed}, exchange {i}: {took:?} is not {base:?} plus whole timeouts"
                );
                stalls.push(u64::from(lost));
            }
            let total: Duration = durations.iter().sum();
            eprintln!("seed {seed}: {durations:?} stalls {stalls:?} total {total:?}");
            assert_eq!(
                stalls.iter().sum::<u64>(),
                retransmissions,
                "seed {seed}: stalls {stalls:?}"
            );
            assert!(
                retransmissions > 0,
                "seed {seed}: no loss in {} packets at 50%",
                2 * count
            );
            runs.push((stalls, retransmissions, total));
        }
        let (first_stalls, first_retransmissions, first_total) = &runs[0];
        let (again_stalls, again_retransmissions, again_total) = &runs[1];
        assert_eq!(first_stalls, again_stalls, "the same seed stalled different exchanges");
        assert_eq!(first_retransmissions, again_retransmissions);
        assert!(
            first_total.abs_diff(*again_total) < profile.rto / 2,
            "{first_total:?} vs {again_total:?}"
        );
        Ok(())
    })
    .await
}

#[tokio::test]
async fn a_cut_up_delivers_exactly_n_bytes_then_closes_both_sides() -> io::Result<()> {
    within(async {
        let link = Link::start(fast(10 * MS, 0.0), 1).await?;
        link.sim.cut_after(Direction::Up, 4_321);
        let (mut client, mut server) = link.connect().await?;
        let sent = pattern(10_000, 3);
        // The write may fail once the proxy has closed the socket.
        let _ = client.write_all(&sent).await;

        let received = read_until_closed(&mut server).await;
        assert_eq!(received.len(), 4_321);
        assert!(received == sent[..4_321], "the bytes before the cut changed");
        assert_eq!(read_until_closed(&mut client).await, b"", "the client end stayed open");
        let stats = link.sim.stats();
        assert_eq!((stats.bytes_up, stats.bytes_down, stats.cuts), (4_321, 0, 1));

        // The plan was for one connection: the next one passes.
        let (mut client, mut server) = link.connect().await?;
        exchange(&mut client, &mut server, &pattern(10_000, 4), &pattern(10_000, 5)).await?;
        let stats = link.sim.stats();
        assert_eq!((stats.connections, stats.cuts, stats.bytes_up), (2, 1, 14_321));
        Ok(())
    })
    .await
}

#[tokio::test]
async fn a_cut_down_delivers_exactly_n_bytes_then_closes_both_sides() -> io::Result<()> {
    within(async {
        let link = Link::start(fast(10 * MS, 0.0), 1).await?;
        link.sim.cut_after(Direction::Down, 2_500);
        let (mut client, mut server) = link.connect().await?;
        exchange(&mut client, &mut server, b"get", &pattern(1_000, 6)).await?;
        let sent = pattern(10_000, 7);
        let _ = server.write_all(&sent).await;

        let received = read_until_closed(&mut client).await;
        assert!(
            received == sent[..1_500],
            "the client should get exactly the 1,500 bytes before the cut"
        );
        assert_eq!(read_until_closed(&mut server).await, b"", "the server end stayed open");
        let stats = link.sim.stats();
        assert_eq!((stats.bytes_up, stats.bytes_down, stats.cuts), (3, 2_500, 1));
        Ok(())
    })
    .await
}

#[tokio::test]
async fn a_zero_byte_cut_closes_the_connection_at_once() -> io::Result<()> {
    within(async {
        let link = Link::start(Profile::loopback(), 1).await?;
        link.sim.cut_after(Direction::Up, 0);
        let (mut client, mut server) = link.connect().await?;
        assert_eq!(read_until_closed(&mut client).await, b"");
        assert_eq!(read_until_closed(&mut server).await, b"");
        assert_eq!(link.sim.stats().cuts, 1);
        Ok(())
    })
    .await
}

/// Sends 10,000 bytes up through each of `connections` new connections and
/// returns how many the server received on each.
async fn bytes_through_each_connection(link: &Link, connections: usize) -> io::Result<Vec<usize>> {
    let mut received = Vec::new();
    for _ in 0..connections {
        let (mut client, mut server) = link.connect().await?;
        let (_, got) = tokio::join!(
            async {
                let _ = client.write_all(&pattern(10_000, 8)).await;
                let _ = client.shutdown().await;
            },
            read_until_closed(&mut server)
        );
        received.push(got.len());
    }
    Ok(received)
}

#[tokio::test]
async fn random_cuts_fall_in_range_at_offsets_fixed_by_the_seed() -> io::Result<()> {
    within(async {
        let plan = CutPlan::random(Direction::Up, 1_000..=9_000).connections(2);
        let mut runs = Vec::new();
        for _ in 0..2 {
            let link = Link::start(Profile::loopback(), 99).await?;
            link.sim.set_cut_plan(plan.clone());
            let received = bytes_through_each_connection(&link, 3).await?;
            assert_eq!(link.sim.stats().cuts, 2);
            runs.push(received);
        }
        let received = &runs[0];
        assert!(
            received[..2].iter().all(|n| (1_000..=9_000).contains(n)),
            "{received:?}"
        );
        assert_ne!(received[0], received[1], "each connection draws its own offset");
        assert_eq!(received[2], 10_000, "the third connection is past the plan");
        assert_eq!(runs[0], runs[1], "the same seed cut at different offsets");
        Ok(())
    })
    .await
}

#[tokio::test]
async fn a_plan_for_every_connection_cuts_them_all_until_cleared() -> io::Result<()> {
    within(async {
        let link = Link::start(Profile::loopback(), 1).await?;
        link.sim
            .set_cut_plan(CutPlan::after(Direction::Up, 500).every_connection());
        assert_eq!(bytes_through_each_connection(&link, 3).await?, [500, 500, 500]);
        link.sim.clear_cut_plan();
        assert_eq!(bytes_through_each_connection(&link, 1).await?, [10_000]);
        assert_eq!(link.sim.stats().cuts, 3);
        Ok(())
    })
    .await
}

#[tokio::test]
async fn cut_all_now_closes_live_connections_and_later_ones_work() -> io::Result<()> {
    within(async {
        let link = Link::start(fast(50 * MS, 0.0), 1).await?;
        let mut pairs = Vec::new();
        for _ in 0..2 {
            let (mut client, mut server) = link.connect().await?;
            exchange(&mut client, &mut server, b"up", b"down").await?;
            pairs.push((client, server));
        }
        // Data in flight when the cut comes is lost.
        pairs[0].0.write_all(b"never arrives").await?;
        assert_eq!(link.sim.cut_all_now(), 2);
        for (client, server) in &mut pairs {
            assert_eq!(read_until_closed(server).await, b"");
            assert_eq!(read_until_closed(client).await, b"");
        }
        let stats = link.sim.stats();
        assert_eq!((stats.cuts, stats.bytes_up), (2, 4));

        let (mut client, mut server) = link.connect().await?;
        exchange(&mut client, &mut server, b"again", b"fine").await?;
        assert_eq!(link.sim.cut_all_now(), 1);
        // The count is taken before the sockets close.
        assert_eq!(read_until_closed(&mut client).await, b"");
        assert_eq!(link.sim.stats().cuts, 3);
        Ok(())
    })
    .await
}

#[tokio::test]
async fn counters_are_exact_for_a_scripted_exchange() -> io::Result<()> {
    within(async {
        let link = Link::start(fast(10 * MS, 0.0), 1).await?;
        let (mut client, mut server) = link.connect().await?;

        // A greeting before the client speaks is not a round trip.
        server.write_all(&[0; 5]).await?;
        client.read_exact(&mut [0; 5]).await?;
        assert_eq!(link.sim.stats().round_trips, 0);

        for (request, response) in [(10, 100), (20, 200), (30, 3_000)] {
            exchange(&mut client, &mut server, &vec![1; request], &vec![2; response]).await?;
        }
        let stats = link.sim.stats();
        assert_eq!(
            stats.to_string(),
            "bytes_up=60 bytes_down=3305 connections=1 cuts=0 round_trips=3 retransmissions=0"
        );

        // Two requests sent before the first answer cost the client one wait.
        client.write_all(&[3; 10]).await?;
        server.read_exact(&mut [0; 10]).await?;
        server.write_all(&[4; 50]).await?;
        server.write_all(&[5; 50]).await?;
        client.read_exact(&mut [0; 100]).await?;
        let stats = link.sim.stats();
        assert_eq!((stats.bytes_up, stats.bytes_down, stats.round_trips), (70, 3_405, 4));

        link.sim.reset_stats();
        assert_eq!(link.sim.stats(), Default::default());
        exchange(&mut client, &mut server, &[6; 7], &[7; 11]).await?;
        let stats = link.sim.stats();
        assert_eq!(
            (stats.bytes_up, stats.bytes_down, stats.round_trips, stats.connections),
            (7, 11, 1, 0)
        );
        Ok(())
    })
    .await
}

#[tokio::test]
async fn a_half_close_reaches_the_other_side_behind_the_data() -> io::Result<()> {
    within(async {
        let link = Link::start(fast(20 * MS, 0.0), 1).await?;
        let (mut client, mut server) = link.connect().await?;
        client.write_all(b"last words").await?;
        client.shutdown().await?;
        let mut received = Vec::new();
        server.read_to_end(&mut received).await?;
        assert_eq!(received, b"last words");
        // The other direction still works after the half-close.
        server.write_all(b"reply").await?;
        server.shutdown().await?;
        let mut received = Vec::new();
        client.read_to_end(&mut received).await?;
        assert_eq!(received, b"reply");
        assert_eq!(link.sim.stats().cuts, 0);
        Ok(())
    })
    .await
}

#[tokio::test]
async fn only_loopback_upstreams_are_accepted() {
    // Refused before any traffic: the simulator never connects off the machine.
    let not_loopback = "0.0.0.0:9".parse().unwrap();
    let refused = LinkSim::start(not_loopback, Profile::loopback(), 0).await;
    assert_eq!(refused.unwrap_err().kind(), io::ErrorKind::InvalidInput);
}

use super::*;

fn config(rate: Option<u64>, queue_bytes: usize) -> LinkConfig {
    LinkConfig {
        bandwidth_bytes_per_sec: rate,
        queue_bytes,
        ..LinkConfig::default()
    }
}

#[test]
fn without_a_cap_chunks_leave_at_once() {
    let mut pacer = Pacer::new(config(None, 10));
    let now = Instant::now();
    assert_eq!(pacer.enqueue(now, 1 << 20), now);
    assert_eq!(pacer.full_until(now), None);
    assert_eq!(pacer.drained_at(now), now);
}

#[test]
fn a_cap_serialises_chunks_one_after_the_other() {
    let mut pacer = Pacer::new(config(Some(1000), 10_000));
    let t0 = Instant::now();
    assert_eq!(pacer.enqueue(t0, 500), t0 + Duration::from_millis(500));
    assert_eq!(pacer.enqueue(t0, 500), t0 + Duration::from_millis(1000));
    // A chunk that arrives after the queue drained starts at its own arrival.
    let later = t0 + Duration::from_secs(5);
    assert_eq!(
        pacer.enqueue(later, 250),
        later + Duration::from_millis(250)
    );
    assert_eq!(pacer.drained_at(later), later + Duration::from_millis(250));
}

#[test]
fn a_full_queue_stops_the_reader_until_it_drains_below_its_bound() {
    let mut pacer = Pacer::new(config(Some(1000), 600));
    let t0 = Instant::now();
    pacer.enqueue(t0, 500);
    assert_eq!(pacer.full_until(t0), None, "500 queued, bound 600");
    pacer.enqueue(t0, 500);
    // 1000 queued: under the bound once the first chunk has left.
    assert_eq!(pacer.full_until(t0), Some(t0 + Duration::from_millis(500)));
    // By then it is under the bound.
    assert_eq!(pacer.full_until(t0 + Duration::from_millis(500)), None);
}

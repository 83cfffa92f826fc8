//! The edge's FIFO queue as a pure function of its requests and workers, so the slot
//! itself and the counterfactual slots of the externality credit
//! (`reward.externality_credit`, `sim/externality.rs`) serve queries by one rule.

/// One offloaded query on its way to the edge: everything the queue needs, precomputed.
#[derive(Debug, Clone, Copy)]
pub(crate) struct OffloadRequest {
    /// Index into the slot's pending queries.
    pub query: usize,
    /// Absolute time its upload finishes, seconds.
    pub arrive_s: f64,
    /// Its upload time, seconds.
    pub uplink_s: f64,
    /// Time one edge worker needs to serve it, seconds.
    pub service_s: f64,
    /// Time its answer takes to come back, seconds.
    pub downlink_s: f64,
}

/// Put requests in the order the edge serves them: by arrival, ties by query index (a
/// total order, so every run and every counterfactual agrees).
pub(crate) fn sort_fifo(reqs: &mut [OffloadRequest]) {
    reqs.sort_by(|a, b| {
        a.arrive_s
            .total_cmp(&b.arrive_s)
            .then(a.query.cmp(&b.query))
    });
}

/// Serve `reqs` (already in FIFO order) on `workers` (absolute free times, updated),
/// each on the first free worker. `visit` gets each request with its latency from `now`
/// and whether it is dropped (latency above `max_latency_s`: it then takes no worker
/// time, as the slot's rule has it).
pub(crate) fn serve(
    reqs: &[OffloadRequest],
    workers: &mut [f64],
    now: f64,
    max_latency_s: f64,
    mut visit: impl FnMut(&OffloadRequest, f64, bool),
) {
    for r in reqs {
        let (w, free) = first_free(workers);
        let finish = free.max(r.arrive_s) + r.service_s;
        let latency = finish + r.downlink_s - now;
        let dropped = latency > max_latency_s;
        if !dropped {
            workers[w] = finish;
        }
        visit(r, latency, dropped);
    }
}

/// The worker that becomes free first (the lowest index among ties) and when.
pub(crate) fn first_free(workers: &[f64]) -> (usize, f64) {
    workers
        .iter()
        .copied()
        .enumerate()
        .fold(
            (0, f64::INFINITY),
            |best, (i, t)| if t < best.1 { (i, t) } else { best },
        )
}

/// Work left on the edge at `t`: the sum over workers of the time each is still busy.
pub(crate) fn backlog_at(workers: &[f64], t: f64) -> f64 {
    workers.iter().map(|&f| (f - t).max(0.0)).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(query: usize, arrive_s: f64, service_s: f64) -> OffloadRequest {
        OffloadRequest {
            query,
            arrive_s,
            uplink_s: arrive_s,
            service_s,
            downlink_s: 0.0,
        }
    }

    #[test]
    fn fifo_on_the_first_free_worker_and_drops_take_no_time() {
        let mut reqs = vec![req(2, 0.5, 1.0), req(0, 0.25, 2.0), req(1, 0.25, 9.0)];
        sort_fifo(&mut reqs);
        assert_eq!(reqs.iter().map(|r| r.query).collect::<Vec<_>>(), [0, 1, 2]);
        let mut workers = [0.0, 1.0];
        let mut seen = Vec::new();
        serve(&reqs, &mut workers, 0.0, 5.0, |r, lat, dropped| {
            seen.push((r.query, lat, dropped));
        });
        // Query 0 on worker 0 (free at 0): done at 2.25. Query 1 on worker 1 (free at 1):
        // 10 s > 5 s, dropped, so worker 1 stays free at 1. Query 2 on worker 1: done at 2.
        assert_eq!(seen, [(0, 2.25, false), (1, 10.0, true), (2, 2.0, false)]);
        assert_eq!(workers, [2.25, 2.0]);
        assert_eq!(backlog_at(&workers, 2.0), 0.25);
    }
}

// Package stats is the statistics catalogue: every statistic privstats can
// count, declared once.
//
// A [Statistic] says what it counts, which tor events it needs, how its
// counters are labelled (one counter, one per category, or a numeric
// histogram), and the figures the privacy planner and the overflow check
// need: the action bound (sensitivity), how many bins one user's activity can
// touch, an estimate of its network-wide daily value and a bound on what one
// relay can add to one counter in a round.
//
// A round names statistics from the catalogue. [Resolve] turns a name (and an
// optional bin override) into the round's [round.StatisticSpec];
// [Compile] turns a round's specs into a [Program], which reads tor event
// lines one at a time and adds each event's increments to the collector's
// [Counters]. Counter i of a round is the i-th (statistic, bin) pair: the
// statistics in round order, the bins of each in order.
//
// Events come from three kinds of tor:
//
//   - stock tor's control port: BW, ORCONN, and on test networks CONN_BW;
//   - PrivCount-patched tor: the PRIVCOUNT_* events;
//   - tor's MetricsPort, whose counter increases reach a Program as
//     pseudo-events in the format [MetricLine] defines.
//
// Privacy: a Program keeps no event. It keeps only a bounded table of open
// OR connections (identifier, opening time, direction) so that it can
// measure connection lifetimes, and forgets each entry when the connection
// closes or the table is full.
package stats

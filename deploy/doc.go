// Package deploy holds what privstats ships for running it under
// Prometheus and Grafana: grafana/privstats.json (a dashboard) and
// prometheus/rules.yml (recording and alerting rules). It has no Go code;
// its tests check that promtool accepts the rules, that a live tally
// server's, keeper's and collector's /metrics pass `promtool check
// metrics`, and that every metric the dashboard and rules name is one
// privstats exports. The metrics themselves are described in
// docs/metrics.md. The systemd units are in deploy/systemd, with their own
// tests.
package deploy

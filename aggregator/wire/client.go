package wire

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/privstats/privstats/identity"
	"github.com/privstats/privstats/transport"
)

// Client is a keeper's or collector's typed view of the tally server's API:
// one method per path, so no caller builds a path or picks a method.
type Client struct {
	t *transport.Client
}

// NewClient connects over pinned mutual TLS (package transport) to the tally
// server at addr whose identity fingerprint is serverFingerprint. timeout
// bounds each request, long polls included.
func NewClient(id *identity.Identity, addr, serverFingerprint string, timeout time.Duration) (*Client, error) {
	t, err := transport.NewClient(id, addr, serverFingerprint, timeout)
	if err != nil {
		return nil, err
	}
	t.SetHeader(HeaderVersion, strconv.Itoa(ProtocolVersion))
	return &Client{t: t}, nil
}

// PollRound waits (at most MaxLongPollS) for a round view newer than since.
func (c *Client) PollRound(ctx context.Context, since uint64) (*RoundView, error) {
	var v RoundView
	if _, err := c.t.Do(ctx, http.MethodGet, PathRound+"?since="+strconv.FormatUint(since, 10), nil, &v); err != nil {
		return nil, err
	}
	return &v, nil
}

// PostBundles sends a collector's signed sealed bundles, one per keeper.
func (c *Client) PostBundles(ctx context.Context, sealed []identity.Signed) error {
	return c.post(ctx, PathBundles, sealed)
}

// GetBundles fetches the signed sealed bundles waiting for the asking
// keeper, from the given index on.
func (c *Client) GetBundles(ctx context.Context, from int) ([]identity.Signed, error) {
	var list []identity.Signed
	if _, err := c.t.Do(ctx, http.MethodGet, PathBundles+"?from="+strconv.Itoa(from), nil, &list); err != nil {
		return nil, err
	}
	return list, nil
}

// PostRoundKey sends a keeper's signed RoundKey.
func (c *Client) PostRoundKey(ctx context.Context, m identity.Signed) error {
	return c.post(ctx, PathRoundKey, m)
}

// PostAck sends a keeper's signed Ack.
func (c *Client) PostAck(ctx context.Context, m identity.Signed) error {
	return c.post(ctx, PathAck, m)
}

// PostReport sends a collector's signed Report.
func (c *Client) PostReport(ctx context.Context, m identity.Signed) error {
	return c.post(ctx, PathReport, m)
}

// PostCommit sends a keeper's signed Commit.
func (c *Client) PostCommit(ctx context.Context, m identity.Signed) error {
	return c.post(ctx, PathCommit, m)
}

// PostShare sends a keeper's signed AggregateShareMsg.
func (c *Client) PostShare(ctx context.Context, m identity.Signed) error {
	return c.post(ctx, PathShare, m)
}

// PostRefusal sends any node's signed Refusal.
func (c *Client) PostRefusal(ctx context.Context, m identity.Signed) error {
	return c.post(ctx, PathRefusal, m)
}

func (c *Client) post(ctx context.Context, path string, body any) error {
	_, err := c.t.Do(ctx, http.MethodPost, path, body, nil)
	return err
}

// CloseIdle closes idle connections (on shutdown).
func (c *Client) CloseIdle() { c.t.CloseIdle() }

package wire

import (
	"context"
	"io"
	"math"
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
	return NewClientDial(id, addr, serverFingerprint, timeout, nil)
}

// NewClientDial is NewClient with the TCP connections opened by dial (nil:
// the default; see transport.NewClientDial).
func NewClientDial(id *identity.Identity, addr, serverFingerprint string, timeout time.Duration, dial transport.Dialer) (*Client, error) {
	t, err := transport.NewClientDial(id, addr, serverFingerprint, timeout, dial)
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

// GetConfig fetches the signed announcement of the round with the given
// config hash; the caller checks it (signature, canonical encoding, hash).
func (c *Client) GetConfig(ctx context.Context, hash string) (identity.Signed, error) {
	var m identity.Signed
	_, err := c.t.Do(ctx, http.MethodGet, PathConfig+hash, nil, &m)
	return m, err
}

// GetAgreement fetches the signed agreement with the given digest; the
// caller checks it.
func (c *Client) GetAgreement(ctx context.Context, digest string) (identity.Signed, error) {
	var m identity.Signed
	_, err := c.t.Do(ctx, http.MethodGet, PathAgreement+digest, nil, &m)
	return m, err
}

// PostBundles sends a collector's signed sealed bundles, one per keeper,
// as a binary list.
func (c *Client) PostBundles(ctx context.Context, sealed []identity.Signed) error {
	body, err := AppendSignedList(nil, sealed)
	if err != nil {
		return err
	}
	_, err = c.t.DoRaw(ctx, http.MethodPost, PathBundles, ContentBinary, body, nil)
	return err
}

// maxBundleAnswer bounds what a keeper reads in one answer of bundles.
const maxBundleAnswer = 64 << 20

// GetBundles fetches the signed sealed bundles waiting for the asking
// keeper, from the given index on.
func (c *Client) GetBundles(ctx context.Context, from int) ([]identity.Signed, error) {
	var list []identity.Signed
	read := func(in io.Reader) (err error) {
		list, err = ReadSignedList(in, maxBundleAnswer, math.MaxInt32)
		return err
	}
	if _, err := c.t.DoRaw(ctx, http.MethodGet, PathBundles+"?from="+strconv.Itoa(from), "", nil, read); err != nil {
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

// PostReport sends a collector's signed Report in the binary envelope.
func (c *Client) PostReport(ctx context.Context, m identity.Signed) error {
	body, err := AppendSigned(nil, m)
	if err != nil {
		return err
	}
	_, err = c.t.DoRaw(ctx, http.MethodPost, PathReport, ContentBinary, body, nil)
	return err
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

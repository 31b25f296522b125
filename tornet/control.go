package tornet

import (
	"bufio"
	"context"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"strings"
	"time"
)

// controlConn is the few control-port commands Start needs: cookie
// authentication, GETINFO, SIGNAL and SETEVENTS HS_DESC for progress logs.
// Tests of real control-port handling should use package torctl against
// Node.ControlAddr instead.
type controlConn struct {
	conn net.Conn
	r    *bufio.Reader
}

// dialControl connects to the node's ControlPort and authenticates with its
// cookie.
func dialControl(ctx context.Context, node *Node) (*controlConn, error) {
	cookie, err := os.ReadFile(node.CookieFile)
	if err != nil {
		return nil, fmt.Errorf("%s control port: %w", node.Name, err)
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", node.ControlAddr)
	if err != nil {
		return nil, fmt.Errorf("%s control port: %w", node.Name, err)
	}
	c := &controlConn{conn: conn, r: bufio.NewReader(conn)}
	if _, err := c.Do(ctx, "AUTHENTICATE "+hex.EncodeToString(cookie)); err != nil {
		conn.Close()
		return nil, fmt.Errorf("%s control port: %w", node.Name, err)
	}
	return c, nil
}

// Do sends one command and returns the text of its reply lines, data lines
// included, when the reply is 250.
func (c *controlConn) Do(ctx context.Context, command string) ([]string, error) {
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(30 * time.Second)
	}
	c.conn.SetDeadline(deadline)
	// Errors name only the verb: AUTHENTICATE's argument is the secret.
	verb, _, _ := strings.Cut(command, " ")
	if _, err := fmt.Fprintf(c.conn, "%s\r\n", command); err != nil {
		return nil, fmt.Errorf("%s: %w", verb, err)
	}
	var lines []string
	for {
		line, err := c.readLine()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", verb, err)
		}
		if len(line) < 4 {
			return nil, fmt.Errorf("%s: malformed reply line %q", verb, line)
		}
		code, sep, text := line[:3], line[3], line[4:]
		if code != "250" {
			return nil, fmt.Errorf("%s: tor replied %q", verb, line)
		}
		lines = append(lines, text)
		switch sep {
		case ' ':
			return lines, nil
		case '+':
			for {
				data, err := c.readLine()
				if err != nil {
					return nil, fmt.Errorf("%s: %w", verb, err)
				}
				if data == "." {
					break
				}
				lines = append(lines, strings.TrimPrefix(data, "."))
			}
		}
	}
}

func (c *controlConn) readLine() (string, error) {
	line, err := c.r.ReadString('\n')
	if err != nil {
		return "", err
	}
	return strings.TrimRight(line, "\r\n"), nil
}

func (c *controlConn) Close() error { return c.conn.Close() }

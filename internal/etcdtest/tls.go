package etcdtest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// PKI is a throwaway certificate authority in a test's temp directory.
type PKI struct {
	Dir string
	// CA is the PEM file of the CA certificate.
	CA     string
	caCert *x509.Certificate
	caKey  *ecdsa.PrivateKey
	serial int64
	t      testing.TB
}

// NewPKI makes a CA.
func NewPKI(t testing.TB) *PKI {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "nimbus test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	p := &PKI{Dir: t.TempDir(), caCert: cert, caKey: key, serial: 1, t: t}
	p.CA = filepath.Join(p.Dir, "ca.pem")
	writePEM(t, p.CA, "CERTIFICATE", der)
	return p
}

func writePEM(t testing.TB, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// Issue makes a certificate for cn, good for TLS client and server use,
// with IP SANs ips (and 127.0.0.1), and returns its cert and key files.
func (p *PKI) Issue(cn string, ips ...string) (certFile, keyFile string) {
	p.t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		p.t.Fatal(err)
	}
	p.serial++
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(p.serial), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		DNSNames:    []string{"localhost"}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}}
	for _, ip := range ips {
		tmpl.IPAddresses = append(tmpl.IPAddresses, net.ParseIP(ip))
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.caCert, &key.PublicKey, p.caKey)
	if err != nil {
		p.t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		p.t.Fatal(err)
	}
	name := fmt.Sprintf("%s-%d", cn, p.serial)
	certFile, keyFile = filepath.Join(p.Dir, name+".pem"), filepath.Join(p.Dir, name+"-key.pem")
	writePEM(p.t, certFile, "CERTIFICATE", der)
	writePEM(p.t, keyFile, "EC PRIVATE KEY", kder)
	return certFile, keyFile
}

// TLSConfig is a client TLS configuration trusting the CA with the given
// certificate.
func (p *PKI) TLSConfig(certFile, keyFile string) *tls.Config {
	p.t.Helper()
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		p.t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(p.caCert)
	return &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}
}

// StartTLS runs a single etcd member serving clients over TLS on host
// (an IP: 127.0.0.1, or an address a network namespace reaches), with
// client-certificate authentication: every client needs a certificate
// from pki, and once etcd auth is enabled its CN is its etcd user. The
// member's certificate has CN "etcd-server".
func StartTLS(t testing.TB, pki *PKI, host string) *Cluster {
	t.Helper()
	bin := Require(t)
	serverCert, serverKey := pki.Issue("etcd-server", host)
	m := &Member{Name: "m0", t: t,
		ClientURL: fmt.Sprintf("https://%s:%d", host, freePort(t)),
		PeerURL:   fmt.Sprintf("http://127.0.0.1:%d", freePort(t)), dir: t.TempDir()}
	m.args = []string{"--name", m.Name, "--data-dir", filepath.Join(m.dir, "data"),
		"--listen-client-urls", m.ClientURL, "--advertise-client-urls", m.ClientURL,
		"--listen-peer-urls", m.PeerURL, "--initial-advertise-peer-urls", m.PeerURL,
		"--initial-cluster", m.Name + "=" + m.PeerURL, "--initial-cluster-state", "new",
		"--initial-cluster-token", "nimbus-test-tls", "--heartbeat-interval", "100", "--election-timeout", "1000",
		"--cert-file", serverCert, "--key-file", serverKey, "--trusted-ca-file", pki.CA, "--client-cert-auth",
		"--log-level", "error"}
	hc, hk := pki.Issue("health-probe")
	m.http = &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: pki.TLSConfig(hc, hk)}}
	m.start(bin)
	c := &Cluster{Members: []*Member{m}}
	t.Cleanup(m.Stop)
	m.WaitHealthy(30 * time.Second)
	return c
}

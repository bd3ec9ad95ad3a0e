package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/nimbus-sdn/nimbus/model"
	"github.com/nimbus-sdn/nimbus/store"
)

// Users and roles created by `controller etcd-roles`.
const (
	rootUser       = "root"
	controllerUser = "nimbus-controller"
	chassisPrefix  = "nimbus-chassis-"
)

// ChassisUser is the etcd user (and role) of a chassis: also the CN of
// its client certificate when etcd authenticates by certificate.
func ChassisUser(chassis string) string { return chassisPrefix + chassis }

// rolesSpec is what etcdRoles sets up.
type rolesSpec struct {
	Chassis []string
	// Passwords gives every user created a random password (returned);
	// otherwise users have none and authenticate by certificate CN.
	Passwords bool
	// RootPassword for the root user etcd needs before auth can be
	// enabled (empty: no password, root authenticates by certificate).
	RootPassword string
	EnableAuth   bool
}

// credential is a user etcdRoles created, with its password if any.
type credential struct{ User, Password string }

// chassisPerms is what a chassis may touch: read the model (the node
// agent mirrors it for the peer chassis it tunnels to) and write only its
// own chassis record, and lease SNAT port blocks and external IPs
// (model.KindSNATBlock, KindSNATOwner: cluster/snatlease, under its own
// etcd lease). Nothing under secrets/ (the LLDP and cluster keys) or
// cluster/ (leases, elections): those are the controllers'. (The SNAT
// kinds are shared by every chassis: one could take another's free
// blocks, never rewrite the tenant model.)
func chassisPerms(chassis string) []perm {
	all := store.Prefix + "model/"
	return []perm{
		{clientv3.PermissionType(clientv3.PermRead), all, clientv3.GetPrefixRangeEnd(all)},
		// This one key, not a prefix: hv1 must not match hv10.
		{clientv3.PermissionType(clientv3.PermReadWrite), store.Key(model.KindChassis, chassis), ""},
		{clientv3.PermissionType(clientv3.PermReadWrite), store.KindPrefix(model.KindSNATBlock), clientv3.GetPrefixRangeEnd(store.KindPrefix(model.KindSNATBlock))},
		{clientv3.PermissionType(clientv3.PermReadWrite), store.KindPrefix(model.KindSNATOwner), clientv3.GetPrefixRangeEnd(store.KindPrefix(model.KindSNATOwner))},
	}
}

// perm is one etcd role permission: key alone, or [key, end).
type perm struct {
	typ      clientv3.PermissionType
	key, end string
}

func validChassis(name string) error {
	if name == "" || strings.ContainsAny(name, "/\x00") || len(name) > 200 {
		return fmt.Errorf("controller etcd-roles: bad chassis name %q", name)
	}
	return nil
}

// etcdRoles creates (idempotently) the controller role with read-write on
// the whole Nimbus prefix, one role per chassis (chassisPerms), their
// users, the root user, and optionally turns etcd auth on.
func etcdRoles(ctx context.Context, c *clientv3.Client, spec rolesSpec) ([]credential, error) {
	var creds []credential
	addUser := func(name, password string, generate bool) error {
		if generate {
			b := make([]byte, 18)
			if _, err := rand.Read(b); err != nil {
				return fmt.Errorf("controller etcd-roles: %w", err)
			}
			password = hex.EncodeToString(b)
		}
		opts := &clientv3.UserAddOptions{NoPassword: password == ""}
		_, err := c.Auth.UserAddWithOptions(ctx, name, password, opts)
		switch {
		case err == nil:
			creds = append(creds, credential{name, password})
		case errors.Is(err, rpctypes.ErrUserAlreadyExist):
			if generate {
				if _, err := c.Auth.UserChangePassword(ctx, name, password); err != nil {
					return fmt.Errorf("controller etcd-roles: password of %s: %w", name, err)
				}
				creds = append(creds, credential{name, password})
			}
		default:
			return fmt.Errorf("controller etcd-roles: user %s: %w", name, err)
		}
		return nil
	}
	role := func(name string, perms []perm) error {
		if _, err := c.Auth.RoleAdd(ctx, name); err != nil && !errors.Is(err, rpctypes.ErrRoleAlreadyExist) {
			return fmt.Errorf("controller etcd-roles: role %s: %w", name, err)
		}
		for _, p := range perms {
			if _, err := c.Auth.RoleGrantPermission(ctx, name, p.key, p.end, p.typ); err != nil {
				return fmt.Errorf("controller etcd-roles: role %s on %s: %w", name, p.key, err)
			}
		}
		return nil
	}
	grant := func(user, r string) error {
		if _, err := c.Auth.UserGrantRole(ctx, user, r); err != nil {
			return fmt.Errorf("controller etcd-roles: granting %s to %s: %w", r, user, err)
		}
		return nil
	}
	if err := addUser(rootUser, spec.RootPassword, false); err != nil {
		return nil, err
	}
	if err := grant(rootUser, "root"); err != nil {
		return nil, err
	}
	if err := role(controllerUser, []perm{{clientv3.PermissionType(clientv3.PermReadWrite), store.Prefix, clientv3.GetPrefixRangeEnd(store.Prefix)}}); err != nil {
		return nil, err
	}
	if err := addUser(controllerUser, "", spec.Passwords); err != nil {
		return nil, err
	}
	if err := grant(controllerUser, controllerUser); err != nil {
		return nil, err
	}
	for _, ch := range spec.Chassis {
		if err := validChassis(ch); err != nil {
			return nil, err
		}
		u := ChassisUser(ch)
		if err := role(u, chassisPerms(ch)); err != nil {
			return nil, err
		}
		if err := addUser(u, "", spec.Passwords); err != nil {
			return nil, err
		}
		if err := grant(u, u); err != nil {
			return nil, err
		}
	}
	if spec.EnableAuth {
		if _, err := c.Auth.AuthEnable(ctx); err != nil {
			return nil, fmt.Errorf("controller etcd-roles: enabling auth: %w", err)
		}
	}
	return creds, nil
}

// etcdRolesCmd is `controller etcd-roles`.
func etcdRolesCmd(args []string) error {
	fs := pflag.NewFlagSet("etcd-roles", pflag.ContinueOnError)
	endpoints := fs.StringSlice("etcd-endpoints", nil, "etcd cluster endpoints (required)")
	cert := fs.String("etcd-tls-cert", "", "client certificate (CN root authenticates as root once auth is on)")
	key := fs.String("etcd-tls-key", "", "client key")
	ca := fs.String("etcd-tls-ca", "", "CA of the etcd servers")
	user := fs.String("etcd-username", "", "user to connect as once auth is on (root); password from NIMBUS_ETCD_PASSWORD")
	chassis := fs.StringSlice("chassis", nil, "chassis names to create users and roles for (comma separated)")
	passwords := fs.Bool("passwords", false, "give the controller and chassis users random passwords (printed); without it they authenticate by client-certificate CN")
	rootPass := fs.Bool("root-password-env", false, "set the root user's password from NIMBUS_ETCD_ROOT_PASSWORD (default: none, root authenticates by certificate CN)")
	enable := fs.Bool("enable-auth", false, "turn etcd authentication on afterwards")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return nil
		}
		return err
	}
	if len(*endpoints) == 0 {
		return errors.New("controller etcd-roles: --etcd-endpoints is required")
	}
	spec := rolesSpec{Chassis: *chassis, Passwords: *passwords, EnableAuth: *enable}
	if *rootPass {
		if spec.RootPassword = os.Getenv("NIMBUS_ETCD_ROOT_PASSWORD"); spec.RootPassword == "" {
			return errors.New("controller etcd-roles: NIMBUS_ETCD_ROOT_PASSWORD is empty")
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	st, err := store.Open(ctx, store.Config{Endpoints: *endpoints, CertFile: *cert, KeyFile: *key, CAFile: *ca,
		Username: *user, Password: os.Getenv("NIMBUS_ETCD_PASSWORD")})
	if err != nil {
		return err
	}
	defer st.Close()
	creds, err := etcdRoles(ctx, st.Client(), spec)
	if err != nil {
		return err
	}
	for _, c := range creds {
		if c.Password != "" {
			fmt.Printf("%s\t%s\n", c.User, c.Password)
		}
	}
	fmt.Fprintf(os.Stderr, "etcd roles ready: %s (read-write %s), %d chassis role(s) (read %smodel/, write only their own chassis record); auth enabled: %v\n",
		controllerUser, store.Prefix, len(spec.Chassis), store.Prefix, spec.EnableAuth)
	return nil
}

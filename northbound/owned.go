package northbound

import (
	"reflect"

	"github.com/nimbus-sdn/nimbus/model"
	"github.com/nimbus-sdn/nimbus/store"
)

// The shape every update, delete and sub-resource action shares: read
// the record of a collection, answer 404 or 403 unless the caller owns
// it, then change it. These helpers hold that shape once; the callbacks
// hold only what differs per resource.

// ownedTxn reads record id of the collection at path inside a store
// transaction, checks the caller owns it (rc.checkOwner) and runs fn on
// it in the same transaction. fn makes and stores the change. The
// record is returned as fn left it.
func ownedTxn[T model.Record](h *handler, rc *reqCtx, path, id string, fn func(tx *store.Tx, r T) error) (T, error) {
	d := h.defs[path]
	var r T
	err := h.txn(rc, func(tx *store.Tx) error {
		var err error
		if r, err = txGet[T](tx, d.kind, id); err != nil {
			return err
		}
		if err := rc.checkOwner(d, r, id); err != nil {
			return err
		}
		return fn(tx, r)
	})
	return r, err
}

// ownedPlan is ownedTxn for deletes that need a guarded plan: build gets
// the record and the revision it was read at, and is called again
// (with a fresh read) whenever the plan's guards fail.
func ownedPlan[T model.Record](h *handler, rc *reqCtx, path, id string, build func(r T, rev int64) (*plan, error)) error {
	d := h.defs[path]
	return h.retryPlan(rc, func() (*plan, error) {
		r, rev, err := getT[T](h, rc, d.kind, id)
		if err != nil {
			return nil, err
		}
		if err := rc.checkOwner(d, r, id); err != nil {
			return nil, err
		}
		return build(r, rev)
	})
}

// ownedUpdate is ownedTxn for a PUT: fn makes the change and bumps the
// revision (touch) as always, except that an update whose body names no
// attribute ({"network": {}}) keeps the record's revision and update
// time. Neutron bumps on every update that names an attribute, even to
// the value it already has (recorded: rev-net-same-name,
// rev-sub-same-name, rev-port-same-name, rev-rtr-same-name,
// rev-sg-same-name), and not on an empty one (net-update-empty).
func ownedUpdate[T model.Record](h *handler, rc *reqCtx, path, id string, fn func(tx *store.Tx, r T) error) (T, error) {
	return ownedTxn(h, rc, path, id, func(tx *store.Tx, r T) error {
		b := baseOf(r)
		rev, upd := b.RevisionNo, b.UpdatedAt
		if err := fn(tx, r); err != nil {
			return err
		}
		if rc.noAttrs && b.RevisionNo != rev {
			b.RevisionNo, b.UpdatedAt = rev, upd
			return tx.Put(r)
		}
		return nil
	})
}

// baseOf is a record's Base (every API record embeds one).
func baseOf(r model.Record) *model.Base {
	return reflect.ValueOf(r).Elem().FieldByName("Base").Addr().Interface().(*model.Base)
}

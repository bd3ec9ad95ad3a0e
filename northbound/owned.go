package northbound

import (
	"github.com/nimbus-sdn/nimbus/model"
	"github.com/nimbus-sdn/nimbus/store"
)

// The shape every update, delete and member action shares: read the
// record of a collection, answer 404 or 403 unless the caller owns it,
// then change it. These helpers hold that shape once; the callbacks
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

// ownedBody is a create body: it may name its owning project.
type ownedBody interface {
	owner() (tenant, project oStr)
}

// namedBody is a body whose name and description are length-checked
// (a body with only a description returns an unset name).
type namedBody interface {
	nameDesc() (name, desc oStr)
}

// readCreate reads a create body into req, checks its name and
// description and resolves the new resource's project (projectOf).
func readCreate(rc *reqCtx, singular string, req ownedBody) (string, error) {
	if err := readNamed(rc, singular, req); err != nil {
		return "", err
	}
	tenant, project := req.owner()
	return projectOf(rc, tenant, project)
}

// readNamed reads a body into req, refusing the readonly attributes
// (on update), and checks its name and description.
func readNamed(rc *reqCtx, singular string, req any, readonly ...string) error {
	if _, err := readBody(rc, singular, req, readonly...); err != nil {
		return err
	}
	if n, ok := req.(namedBody); ok {
		return checkNameDesc(n.nameDesc())
	}
	return nil
}

// noRefs refuses a delete with inUse (a 409) while any reference key
// exists under prefix, and guards plan p against one appearing before
// it commits.
func (h *handler) noRefs(rc *reqCtx, p *plan, prefix string, inUse error) error {
	kvs, _, err := h.listRaw(rc, prefix)
	if err != nil {
		return err
	}
	if len(kvs) > 0 {
		return inUse
	}
	p.empty(prefix)
	return nil
}

// externalNetTx reads network id in tx for a gateway or floating IP: 404
// if it does not exist, 400 with notExternal (one %s: the id) if it is
// not external.
func externalNetTx(tx *store.Tx, id, notExternal string) (*model.Network, error) {
	n, err := txGet[*model.Network](tx, model.KindNetwork, id)
	if err != nil {
		return nil, err
	}
	if n == nil {
		return nil, notFound("NetworkNotFound", "Network", id)
	}
	if !n.External {
		return nil, badRequest(notExternal, id)
	}
	return n, nil
}

// ownerAttrs are the owner attributes of a request body; a request
// struct embeds them (decodeBody counts their fields as its own).
type ownerAttrs struct {
	TenantID  oStr `json:"tenant_id"`
	ProjectID oStr `json:"project_id"`
}

func (a *ownerAttrs) owner() (oStr, oStr) { return a.TenantID, a.ProjectID }

// nameAttrs are the name and description of a request body.
type nameAttrs struct {
	Name        oStr `json:"name"`
	Description oStr `json:"description"`
}

func (a *nameAttrs) nameDesc() (oStr, oStr) { return a.Name, a.Description }

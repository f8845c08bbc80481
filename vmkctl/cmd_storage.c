/* vmkctl storage ... */
#include "handlers.h"

static const char *const ds_cols[] = { "name",       "path",       "shared", "capacity_bytes",
	                               "free_bytes", "accessible", "source" };

static int ds_row(struct out_doc *out, const Vmk__Datastore *d)
{
	int row = out_add_row(out);

	if (row < 0)
		return row;
	out_set_str(out, (size_t)row, "name", d->name);
	out_set_str(out, (size_t)row, "path", d->path);
	out_set_bool(out, (size_t)row, "shared", d->shared);
	out_set_int(out, (size_t)row, "capacity_bytes", (int64_t)d->capacity_bytes);
	out_set_int(out, (size_t)row, "free_bytes", (int64_t)d->free_bytes);
	out_set_bool(out, (size_t)row, "accessible", d->accessible);
	out_set_str(out, (size_t)row, "source", d->source);
	return 0;
}

int cmd_storage_datastore_list(struct vmkctl *v, const struct vmkctl_args *a, struct out_doc *out)
{
	Vmk__Request req = VMK__REQUEST__INIT;
	Vmk__DatastoreListRequest body = VMK__DATASTORE_LIST_REQUEST__INIT;
	Vmk__Response *resp;
	int ret;

	(void)a;
	req.body_case = VMK__REQUEST__BODY_DATASTORE_LIST;
	req.datastore_list = &body;
	if ((ret = vmkctl_call(v, &req, &resp)))
		return ret;
	const Vmk__DatastoreListResponse *r =
	        VMKCTL_BODY(v, resp, VMK__RESPONSE__BODY_DATASTORE_LIST, datastore_list);
	if (!r)
		return 1;
	if (out_init(out, "Datastore", true, 7, ds_cols) < 0)
		return vmkctl_error(v, 1, "out of memory");
	for (size_t i = 0; i < r->n_datastores; i++) {
		if (ds_row(out, r->datastores[i]) < 0)
			return vmkctl_error(v, 1, "out of memory");
	}
	return 0;
}

int cmd_storage_datastore_add(struct vmkctl *v, const struct vmkctl_args *a, struct out_doc *out)
{
	Vmk__Request req = VMK__REQUEST__INIT;
	Vmk__DatastoreAddRequest body = VMK__DATASTORE_ADD_REQUEST__INIT;
	Vmk__Response *resp;
	int ret;

	body.name = (char *)args_str(a, "name");
	body.path = (char *)args_str(a, "path");
	body.shared = args_flag(a, "shared");
	req.body_case = VMK__REQUEST__BODY_DATASTORE_ADD;
	req.datastore_add = &body;
	if ((ret = vmkctl_call(v, &req, &resp)))
		return ret;
	const Vmk__Datastore *d = VMKCTL_BODY(v, resp, VMK__RESPONSE__BODY_DATASTORE, datastore);
	if (!d)
		return 1;
	if (out_init(out, "Datastore", false, 7, ds_cols) < 0 || ds_row(out, d) < 0)
		return vmkctl_error(v, 1, "out of memory");
	return 0;
}

int cmd_storage_datastore_remove(struct vmkctl *v, const struct vmkctl_args *a, struct out_doc *out)
{
	static const char *const cols[] = { "name", "removed" };
	Vmk__Request req = VMK__REQUEST__INIT;
	Vmk__DatastoreRemoveRequest body = VMK__DATASTORE_REMOVE_REQUEST__INIT;
	Vmk__Response *resp;
	int ret;

	body.name = (char *)args_str(a, "name");
	req.body_case = VMK__REQUEST__BODY_DATASTORE_REMOVE;
	req.datastore_remove = &body;
	if ((ret = vmkctl_call(v, &req, &resp)))
		return ret;
	if (out_init(out, "DatastoreRemoved", false, 2, cols) < 0 || out_add_row(out) < 0)
		return vmkctl_error(v, 1, "out of memory");
	out_set_str(out, 0, "name", body.name);
	out_set_bool(out, 0, "removed", true);
	return 0;
}

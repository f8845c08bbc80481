/* Command handlers, one file per namespace (cmd_<namespace>.c). */
#ifndef VMKCTL_HANDLERS_H
#define VMKCTL_HANDLERS_H

#include "cmd.h"
#include "ctx.h"

int cmd_system_version_get(struct vmkctl *v, const struct vmkctl_args *a, struct out_doc *out);
int cmd_hardware_cpu_get(struct vmkctl *v, const struct vmkctl_args *a, struct out_doc *out);
int cmd_hardware_memory_get(struct vmkctl *v, const struct vmkctl_args *a, struct out_doc *out);
int cmd_network_netstack_list(struct vmkctl *v, const struct vmkctl_args *a, struct out_doc *out);
int cmd_network_netstack_add(struct vmkctl *v, const struct vmkctl_args *a, struct out_doc *out);
int cmd_network_netstack_remove(struct vmkctl *v, const struct vmkctl_args *a, struct out_doc *out);
int cmd_network_portgroup_list(struct vmkctl *v, const struct vmkctl_args *a, struct out_doc *out);
int cmd_network_interface_list(struct vmkctl *v, const struct vmkctl_args *a, struct out_doc *out);
int cmd_network_interface_add(struct vmkctl *v, const struct vmkctl_args *a, struct out_doc *out);
int cmd_network_interface_remove(struct vmkctl *v, const struct vmkctl_args *a,
                                 struct out_doc *out);
int cmd_network_interface_set(struct vmkctl *v, const struct vmkctl_args *a, struct out_doc *out);
int cmd_network_ipv4_get(struct vmkctl *v, const struct vmkctl_args *a, struct out_doc *out);
int cmd_network_ipv4_set(struct vmkctl *v, const struct vmkctl_args *a, struct out_doc *out);
int cmd_network_tag_get(struct vmkctl *v, const struct vmkctl_args *a, struct out_doc *out);
int cmd_network_tag_add(struct vmkctl *v, const struct vmkctl_args *a, struct out_doc *out);
int cmd_network_tag_remove(struct vmkctl *v, const struct vmkctl_args *a, struct out_doc *out);
int cmd_network_diag_ping(struct vmkctl *v, const struct vmkctl_args *a, struct out_doc *out);
int cmd_storage_datastore_list(struct vmkctl *v, const struct vmkctl_args *a, struct out_doc *out);
int cmd_storage_datastore_add(struct vmkctl *v, const struct vmkctl_args *a, struct out_doc *out);
int cmd_storage_datastore_remove(struct vmkctl *v, const struct vmkctl_args *a,
                                 struct out_doc *out);

int cmd_vm_create(struct vmkctl *v, const struct vmkctl_args *a, struct out_doc *out);
int cmd_vm_list(struct vmkctl *v, const struct vmkctl_args *a, struct out_doc *out);
int cmd_vm_get(struct vmkctl *v, const struct vmkctl_args *a, struct out_doc *out);
int cmd_vm_destroy(struct vmkctl *v, const struct vmkctl_args *a, struct out_doc *out);
int cmd_vm_register(struct vmkctl *v, const struct vmkctl_args *a, struct out_doc *out);
int cmd_vm_unregister(struct vmkctl *v, const struct vmkctl_args *a, struct out_doc *out);
int cmd_vm_power_on(struct vmkctl *v, const struct vmkctl_args *a, struct out_doc *out);
int cmd_vm_power_off(struct vmkctl *v, const struct vmkctl_args *a, struct out_doc *out);
int cmd_vm_power_reset(struct vmkctl *v, const struct vmkctl_args *a, struct out_doc *out);
int cmd_vm_power_suspend(struct vmkctl *v, const struct vmkctl_args *a, struct out_doc *out);
int cmd_vm_power_resume(struct vmkctl *v, const struct vmkctl_args *a, struct out_doc *out);
int cmd_vm_migrate(struct vmkctl *v, const struct vmkctl_args *a, struct out_doc *out);
int cmd_vm_clone(struct vmkctl *v, const struct vmkctl_args *a, struct out_doc *out);
int cmd_vm_ft_enable(struct vmkctl *v, const struct vmkctl_args *a, struct out_doc *out);
int cmd_vm_ft_disable(struct vmkctl *v, const struct vmkctl_args *a, struct out_doc *out);
int cmd_vm_ft_status(struct vmkctl *v, const struct vmkctl_args *a, struct out_doc *out);
int cmd_vm_ft_failover_test(struct vmkctl *v, const struct vmkctl_args *a, struct out_doc *out);
/* vm power on of one VM, waited for, printing nothing (clone, revert). */
int vmkctl_power_on_wait(struct vmkctl *h, const char *name);
int cmd_vm_snapshot_create(struct vmkctl *v, const struct vmkctl_args *a, struct out_doc *out);
int cmd_vm_snapshot_list(struct vmkctl *v, const struct vmkctl_args *a, struct out_doc *out);
int cmd_vm_snapshot_revert(struct vmkctl *v, const struct vmkctl_args *a, struct out_doc *out);
int cmd_vm_snapshot_remove(struct vmkctl *v, const struct vmkctl_args *a, struct out_doc *out);
int cmd_vm_console(struct vmkctl *v, const struct vmkctl_args *a, struct out_doc *out);
int cmd_vm_process_list(struct vmkctl *v, const struct vmkctl_args *a, struct out_doc *out);
int cmd_vm_process_kill(struct vmkctl *v, const struct vmkctl_args *a, struct out_doc *out);

int cmd_task_list(struct vmkctl *v, const struct vmkctl_args *a, struct out_doc *out);
int cmd_task_get(struct vmkctl *v, const struct vmkctl_args *a, struct out_doc *out);
int cmd_task_cancel(struct vmkctl *v, const struct vmkctl_args *a, struct out_doc *out);

#endif

/* The command table of vmkctl (../shared/CLI.md). Commands that are not
 * built yet are absent, not stubs. */
#include <string.h>

#include "cmd.h"
#include "handlers.h"
#include "taskwait.h"
#include "util.h"

static const struct vmkctl_ns namespaces[] = {
	{ "hardware", "host hardware: CPU and memory" },
	{ "hardware cpu", "the host's processors" },
	{ "hardware memory", "the host's memory" },
	{ "network", "VMkernel networking: netstacks, vmk adapters, port groups, diagnostics" },
	{ "network diag", "network diagnostics (vmkping)" },
	{ "network ip", "TCP/IP stacks (netstacks) and VMkernel adapters" },
	{ "network ip interface", "VMkernel (vmk) adapters: add, remove, MTU, state" },
	{ "network ip interface ipv4", "IPv4 settings of a vmk adapter" },
	{ "network ip interface tag", "traffic types of a vmk adapter (Management, VMotion, ...)" },
	{ "network ip netstack", "TCP/IP stacks: each is a network namespace of its own" },
	{ "network vswitch", "virtual switches" },
	{ "network vswitch standard", "standard switches (Linux bridges), from host.cfg" },
	{ "network vswitch standard portgroup", "port groups of the standard switches" },
	{ "storage", "storage of the host" },
	{ "storage datastore", "datastores: directories that hold VMs, local or shared" },
	{ "system", "host-wide settings and information" },
	{ "system version", "product version of the host" },
	{ "task", "long operations of the host: progress, result, cancellation" },
	{ "vm", "virtual machines of the host" },
	{ "vm ft", "fault tolerance: a secondary copy on another host that takes over when the "
	           "primary is lost" },
	{ "vm power", "power operations: on, off, reset, suspend, resume (tasks)" },
	{ "vm process", "the vmx processes (worlds) that run the VMs" },
	{ "vm snapshot", "snapshots of a VM's disks (and memory): create, list, revert, remove" },
};

/* options several network commands share */
#define OPT_VMK_NAME                                                                               \
	{                                                                                          \
		.name = "interface-name", .shortname = 'i', .type = OPT_STR, .metavar = "vmkN",    \
		.help = "the vmk adapter", .required = true                                        \
	}
#define OPT_TAG_NAME                                                                               \
	{                                                                                          \
		.name = "tagname", .shortname = 't', .type = OPT_ENUM, .metavar = "TAG",           \
		.choices = "Management|VMotion|vSphereProvisioning|faultToleranceLogging|"         \
		           "vSphereReplication|VSAN|vSphereBackupNFC|NVMeTCP|NVMeRDMA",            \
		.help = "traffic type", .required = true                                           \
	}

static const struct vmkctl_cmd commands[] = {
    {
        .path = "system version",
        .verb = "get",
        .help = "Show the product name, version and build of the host.",
        .run = cmd_system_version_get,
    },
    {
        .path = "hardware cpu",
        .verb = "get",
        .help = "Show the CPU model, core counts, KVM availability and the CPUID "
                "features a VM can rely on when it migrates.",
        .run = cmd_hardware_cpu_get,
    },
    {
        .path = "hardware memory",
        .verb = "get",
        .help = "Show the host's physical and available memory and huge pages.",
        .run = cmd_hardware_memory_get,
    },
    {
        .path = "network ip netstack",
        .verb = "list",
        .help = "List the TCP/IP stacks with their namespaces and vmk adapters.",
        .run = cmd_network_netstack_list,
    },
    {
        .path = "network ip netstack",
        .verb = "add",
        .help = "Add a custom TCP/IP stack (a network namespace of its own).",
        .opts =
            {
                {.name = "netstack",
                 .shortname = 'N',
                 .type = OPT_STR,
                 .metavar = "NAME",
                 .help = "netstack name: letters, digits, '.', '_', '-' (at most 31)",
                 .required = true},
            },
        .run = cmd_network_netstack_add,
    },
    {
        .path = "network ip netstack",
        .verb = "remove",
        .help = "Remove a custom TCP/IP stack that has no vmk adapters.",
        .opts =
            {
                {.name = "netstack",
                 .shortname = 'N',
                 .type = OPT_STR,
                 .metavar = "NAME",
                 .help = "the netstack to remove",
                 .required = true},
            },
        .run = cmd_network_netstack_remove,
    },
    {
        .path = "network ip interface",
        .verb = "list",
        .help = "List the vmk adapters: port group, netstack, MAC, MTU, addresses, tags.",
        .run = cmd_network_interface_list,
    },
    {
        .path = "network ip interface",
        .verb = "add",
        .help = "Add a vmk adapter on a port group, in a netstack fixed at creation.",
        .opts =
            {
                OPT_VMK_NAME,
                {.name = "portgroup-name",
                 .shortname = 'p',
                 .type = OPT_STR,
                 .metavar = "PORTGROUP",
                 .help = "port group to connect it to",
                 .required = true},
                {.name = "netstack",
                 .shortname = 'N',
                 .type = OPT_STR,
                 .metavar = "NETSTACK",
                 .help = "TCP/IP stack (default defaultTcpipStack)"},
                {.name = "mtu",
                 .shortname = 'm',
                 .type = OPT_INT,
                 .metavar = "MTU",
                 .min = 576,
                 .max = 9000,
                 .help = "MTU, 576..9000, at most the uplink's (default 1500)"},
            },
        .run = cmd_network_interface_add,
    },
    {
        .path = "network ip interface",
        .verb = "remove",
        .help = "Remove a vmk adapter (not the last one tagged Management).",
        .opts =
            {
                OPT_VMK_NAME,
            },
        .run = cmd_network_interface_remove,
    },
    {
        .path = "network ip interface",
        .verb = "set",
        .help = "Change the MTU of a vmk adapter, or enable or disable it.",
        .opts =
            {
                OPT_VMK_NAME,
                {.name = "mtu",
                 .shortname = 'm',
                 .type = OPT_INT,
                 .metavar = "MTU",
                 .min = 576,
                 .max = 9000,
                 .help = "MTU, 576..9000, at most the uplink's"},
                {.name = "enabled",
                 .shortname = 'e',
                 .type = OPT_ENUM,
                 .metavar = "BOOL",
                 .choices = "true|false",
                 .help = "bring it up or down"},
            },
        .run = cmd_network_interface_set,
    },
    {
        .path = "network ip interface ipv4",
        .verb = "get",
        .help = "Show the IPv4 settings of a vmk adapter.",
        .opts =
            {
                OPT_VMK_NAME,
            },
        .run = cmd_network_ipv4_get,
    },
    {
        .path = "network ip interface ipv4",
        .verb = "set",
        .help = "Set a static IPv4 address on a vmk adapter (or none).",
        .opts =
            {
                OPT_VMK_NAME,
                {.name = "type",
                 .shortname = 't',
                 .type = OPT_ENUM,
                 .metavar = "TYPE",
                 .choices = "static|none",
                 .help = "static (with -I and -N) or none",
                 .required = true},
                {.name = "ipv4",
                 .shortname = 'I',
                 .type = OPT_STR,
                 .metavar = "ADDRESS",
                 .help = "IPv4 address, e.g. 198.18.2.11"},
                {.name = "netmask",
                 .shortname = 'N',
                 .type = OPT_STR,
                 .metavar = "NETMASK",
                 .help = "netmask, e.g. 255.255.255.0"},
                {.name = "gateway",
                 .shortname = 'g',
                 .type = OPT_STR,
                 .metavar = "GATEWAY",
                 .help = "default gateway of the adapter's netstack, on its subnet"},
            },
        .run = cmd_network_ipv4_set,
    },
    {
        .path = "network ip interface tag",
        .verb = "get",
        .help = "Show the traffic types a vmk adapter carries.",
        .opts =
            {
                OPT_VMK_NAME,
            },
        .run = cmd_network_tag_get,
    },
    {
        .path = "network ip interface tag",
        .verb = "add",
        .help = "Let a vmk adapter carry a traffic type (at most one faultToleranceLogging "
                "adapter per host).",
        .opts =
            {
                OPT_VMK_NAME,
                OPT_TAG_NAME,
            },
        .run = cmd_network_tag_add,
    },
    {
        .path = "network ip interface tag",
        .verb = "remove",
        .help = "Stop a vmk adapter carrying a traffic type (the host keeps one Management "
                "adapter).",
        .opts =
            {
                OPT_VMK_NAME,
                OPT_TAG_NAME,
            },
        .run = cmd_network_tag_remove,
    },
    {
        .path = "network vswitch standard portgroup",
        .verb = "list",
        .help = "List the port groups with their switch, VLAN, uplink, MTU and vmk adapters.",
        .run = cmd_network_portgroup_list,
    },
    {
        .path = "network diag",
        .verb = "ping",
        .help = "vmkping: ICMP echo from inside a vmk adapter's netstack; with -d and -s "
                "it checks the MTU of the path (jumbo frames: -d -s 8972).",
        .opts =
            {
                {.name = "interface",
                 .shortname = 'I',
                 .type = OPT_STR,
                 .metavar = "vmkN",
                 .help = "send from this vmk adapter's netstack",
                 .required = true},
                {.name = "host",
                 .shortname = 'H',
                 .type = OPT_STR,
                 .metavar = "ADDRESS",
                 .help = "IPv4 address to ping",
                 .required = true},
                {.name = "size",
                 .shortname = 's',
                 .type = OPT_INT,
                 .metavar = "SIZE",
                 .min = 0,
                 .max = 65499,
                 .help = "ICMP payload bytes (default 56)"},
                {.name = "df",
                 .shortname = 'd',
                 .type = OPT_FLAG,
                 .help = "set don't-fragment: fail instead of fragmenting"},
                {.name = "count",
                 .shortname = 'c',
                 .type = OPT_INT,
                 .metavar = "COUNT",
                 .min = 1,
                 .max = 20,
                 .help = "echo requests (default 3)"},
            },
        .run = cmd_network_diag_ping,
    },
    {
        .path = "storage datastore",
        .verb = "list",
        .help = "List the datastores of the host with capacity and free space.",
        .run = cmd_storage_datastore_list,
    },
    {
        .path = "storage datastore",
        .verb = "add",
        .help = "Add a directory of the host as a datastore (persisted across "
                "restarts).",
        .opts =
            {
                {.name = "name",
                 .shortname = 'n',
                 .type = OPT_STR,
                 .metavar = "NAME",
                 .help = "datastore name: letters, digits, '.', '_', '-'",
                 .required = true},
                {.name = "path",
                 .type = OPT_STR,
                 .metavar = "DIR",
                 .help = "absolute path of an existing directory",
                 .required = true},
                {.name = "shared",
                 .type = OPT_FLAG,
                 .help = "the directory is shared with other hosts (NFS, cluster FS)"},
            },
        .run = cmd_storage_datastore_add,
    },
    {
        .path = "storage datastore",
        .verb = "remove",
        .help = "Remove a datastore added at runtime (its files are kept).",
        .opts =
            {
                {.name = "name",
                 .shortname = 'n',
                 .type = OPT_STR,
                 .metavar = "NAME",
                 .help = "datastore to remove",
                 .required = true},
            },
        .run = cmd_storage_datastore_remove,
    },
    {
        .path = "vm",
        .verb = "create",
        .help = "Create a VM on a datastore: its directory, .vmx file and sparse disk images.",
        .opts =
            {
                { .name = "name", .shortname = 'n', .type = OPT_STR, .metavar = "NAME",
                  .help = "VM name: letters, digits, '.', '_', '-' (at most 80)", .required = true },
                { .name = "memory", .shortname = 'm', .type = OPT_INT, .metavar = "MiB", .min = 16,
                  .max = 65536, .help = "guest memory in MiB", .required = true },
                { .name = "vcpus", .shortname = 'c', .type = OPT_INT, .metavar = "VCPUS", .min = 1,
                  .max = 64, .help = "virtual CPUs (default 1)" },
                { .name = "kernel", .type = OPT_STR, .metavar = "DS:PATH|PATH",
                  .help = "PVH ELF or bzImage: DATASTORE:PATH or an absolute path",
                  .required = true },
                { .name = "cmdline", .type = OPT_STR, .metavar = "S",
                  .help = "kernel command line" },
                { .name = "disk", .type = OPT_INT, .metavar = "SIZE_MiB", .min = 1,
                  .max = 4194304, .repeatable = true, .help = "add a sparse disk of SIZE_MiB" },
                { .name = "nic", .type = OPT_STR, .metavar = "PORTGROUP", .repeatable = true,
                  .help = "add a NIC on a port group" },
                { .name = "datastore", .shortname = 'd', .type = OPT_STR, .metavar = "DATASTORE",
                  .help = "datastore for the VM (default: the host's first)" },
            },
        .run = cmd_vm_create,
    },
    {
        .path = "vm",
        .verb = "list",
        .help = "List the VMs registered on the host.",
        .run = cmd_vm_list,
    },
    {
        .path = "vm",
        .verb = "get",
        .help = "Show a VM's configuration and state.",
        .opts = { { .name = "name", .shortname = 'n', .type = OPT_STR, .metavar = "NAME",
                    .help = "the VM", .required = true } },
        .run = cmd_vm_get,
    },
    {
        .path = "vm",
        .verb = "destroy",
        .help = "Unregister a powered-off VM and delete its directory and disks.",
        .opts = { { .name = "name", .shortname = 'n', .type = OPT_STR, .metavar = "NAME",
                    .help = "the VM", .required = true } },
        .run = cmd_vm_destroy,
    },
    {
        .path = "vm power",
        .verb = "on",
        .help = "Power on a VM (a suspended one resumes): starts its vmx, which takes the VM's datastore lock.",
        .opts = { { .name = "name", .shortname = 'n', .type = OPT_STR, .metavar = "NAME", .help = "the VM", .required = true }, VMKCTL_TASK_OPTS },
        .run = cmd_vm_power_on,
    },
    {
        .path = "vm power",
        .verb = "off",
        .help = "Power off a VM at once (as pulling the plug); a suspended VM loses its saved state.",
        .opts = { { .name = "name", .shortname = 'n', .type = OPT_STR, .metavar = "NAME", .help = "the VM", .required = true }, VMKCTL_TASK_OPTS },
        .run = cmd_vm_power_off,
    },
    {
        .path = "vm power",
        .verb = "reset",
        .help = "Reset a VM: power it off and on again (the guest boots anew).",
        .opts = { { .name = "name", .shortname = 'n', .type = OPT_STR, .metavar = "NAME", .help = "the VM", .required = true }, VMKCTL_TASK_OPTS },
        .run = cmd_vm_power_reset,
    },
    {
        .path = "vm power",
        .verb = "suspend",
        .help = "Suspend a VM: save its memory and device state in its directory and stop its vmx.",
        .opts = { { .name = "name", .shortname = 'n', .type = OPT_STR, .metavar = "NAME", .help = "the VM", .required = true }, VMKCTL_TASK_OPTS },
        .run = cmd_vm_power_suspend,
    },
    {
        .path = "vm power",
        .verb = "resume",
        .help = "Resume a suspended VM from its saved state.",
        .opts = { { .name = "name", .shortname = 'n', .type = OPT_STR, .metavar = "NAME", .help = "the VM", .required = true }, VMKCTL_TASK_OPTS },
        .run = cmd_vm_power_resume,
    },
    {
        .path = "vm",
        .verb = "migrate",
        .help = "Live-migrate a running VM to another host (vMotion). The VM keeps running; "
                "a failure or cancel leaves it running where it was. With --cold, move a "
                "powered-off or suspended VM's files to the destination over NFC (the "
                "provisioning network) and register it there; the source lets it go only "
                "once the destination has verified every file.",
        .opts = { { .name = "name", .shortname = 'n', .type = OPT_STR, .metavar = "NAME",
                    .help = "the VM", .required = true },
                  { .name = "dest", .type = OPT_STR, .metavar = "HOST",
                    .help = "the destination host (as for -s; it must see the VM's datastore)",
                    .required = true },
                  { .name = "downtime-ms", .type = OPT_INT, .metavar = "MS", .min = 1,
                    .max = 600000, .help = "the pause the guest may see (default 50)" },
                  { .name = "max-bandwidth", .type = OPT_INT, .metavar = "MiBps", .min = 1,
                    .max = 1000000, .help = "cap the migration's use of the link" },
                  { .name = "streams", .type = OPT_INT, .metavar = "N", .min = 1, .max = 8,
                    .help = "parallel TCP connections for the memory (default 1)" },
                  { .name = "compress", .type = OPT_FLAG,
                    .help = "compress the memory with lz4 (for slow links)" },
                  { .name = "verify-pages", .type = OPT_FLAG,
                    .help = "checksum every page at the source and check it at the "
                            "destination (end to end, beyond TCP's own checksum; costs "
                            "about a quarter more CPU time)" },
                  { .name = "storage", .type = OPT_STR, .metavar = "DATASTORE",
                    .help = "move the VM's directory and disks to this datastore of the "
                            "destination too (for VMs on local storage); the source's files "
                            "are removed after" },
                  { .name = "cold", .type = OPT_FLAG,
                    .help = "cold migration of a powered-off or suspended VM: copy its files "
                            "(not needed on a shared datastore) and register it there" },
                  { .name = "datastore", .type = OPT_STR, .metavar = "DATASTORE",
                    .help = "with --cold: the destination datastore (default: the one of "
                            "the same name)" },
                  { .name = "converge-timeout", .type = OPT_INT, .metavar = "SECONDS",
                    .min = 1, .max = 86400,
                    .help = "give up when the memory copy has not converged by then (default 120)" },
                  VMKCTL_TASK_OPTS },
        .run = cmd_vm_migrate,
    },
    {
        .path = "vm",
        .verb = "clone",
        .help = "Make a full clone of a VM: a new VM with its own name, uuid and MACs and a "
                "flat copy of its disks as they are now (holes stay holes), on this host or on "
                "another (--dest, copied over NFC on the provisioning network). A running VM "
                "keeps running: its disks are frozen under temporary snapshot layers for the "
                "copy. The source stays as it was.",
        .opts = { { .name = "vm", .shortname = 'n', .type = OPT_STR, .metavar = "NAME",
                    .help = "the VM to clone", .required = true },
                  { .name = "name", .type = OPT_STR, .metavar = "NEW",
                    .help = "the clone's name", .required = true },
                  { .name = "dest", .type = OPT_STR, .metavar = "HOST",
                    .help = "the host the clone goes to (default: the VM's)" },
                  { .name = "datastore", .type = OPT_STR, .metavar = "DATASTORE",
                    .help = "the clone's datastore (default: the one of the VM's name)" },
                  { .name = "linked", .type = OPT_FLAG,
                    .help = "a linked clone: its disks are copy-on-write deltas over a new "
                            "snapshot of the VM (instant, whatever the disk size; same host)" },
                  { .name = "powered-on", .type = OPT_FLAG,
                    .help = "power the clone on once it exists" },
                  { .name = "max-bandwidth", .type = OPT_INT, .metavar = "MiBps", .min = 1,
                    .max = 1000000, .help = "cap the copy's use of the link (--dest)" },
                  VMKCTL_TASK_OPTS },
        .run = cmd_vm_clone,
    },
    {
        .path = "vm ft",
        .verb = "enable",
        .help = "Protect a running VM with fault tolerance: a secondary vmx on another host "
                "(which sees the VM's shared datastore) gets a full copy, then a checkpoint "
                "every --epoch-ms over the faultToleranceLogging vmk (Management when there "
                "is none). The guest's output waits until the secondary has acknowledged it. "
                "Its disks' writes go with the checkpoints to the secondary's own copies, in "
                "ft-HOST/ in the VM's directory (a VM with snapshots is refused). "
                "If the primary is lost the secondary takes over; a generation record on the "
                "datastore makes sure only one copy runs.",
        .opts = { { .name = "name", .shortname = 'n', .type = OPT_STR, .metavar = "NAME",
                    .help = "the VM", .required = true },
                  { .name = "secondary", .type = OPT_STR, .metavar = "HOST",
                    .help = "the host of the secondary copy (as for -s), or auto: the first "
                            "host of the lab, other than the VM's, that can hold it; with "
                            "auto, a secondary lost later (a failover, a dead host) is "
                            "replaced without being asked, by the hosts themselves (their "
                            "cluster section)",
                    .required = true },
                  { .name = "epoch-ms", .type = OPT_INT, .metavar = "MS", .min = 1,
                    .max = 1000, .help = "the time between checkpoints (default 10)" },
                  { .name = "secondary-datastore", .type = OPT_STR, .metavar = "DS",
                    .help = "a datastore of the secondary's host for its copies of the "
                            "VM's disks (default: the VM's own directory)" },
                  { .name = "detect-ms", .type = OPT_INT, .metavar = "MS", .min = 12,
                    .max = 5000,
                    .help = "a peer silent this long is declared failed, and the other "
                            "side takes the generation record (default 3 epochs + 100 ms; "
                            "at least 2 epochs + 10 ms)" },
                  VMKCTL_TASK_OPTS },
        .run = cmd_vm_ft_enable,
    },
    {
        .path = "vm ft",
        .verb = "disable",
        .help = "End a VM's protection: its secondary stops and the VM runs on unprotected. "
                "On the secondary's host it stops the secondary copy.",
        .opts = { { .name = "name", .shortname = 'n', .type = OPT_STR, .metavar = "NAME",
                    .help = "the VM", .required = true } },
        .run = cmd_vm_ft_disable,
    },
    {
        .path = "vm ft",
        .verb = "status",
        .help = "A VM's protection: state (notProtected, starting, protected, needSecondary), "
                "primary and secondary hosts, checkpoints acknowledged, the age of the last "
                "one, the lag, the network the checkpoints take, pause percentiles.",
        .opts = { { .name = "name", .shortname = 'n', .type = OPT_STR, .metavar = "NAME",
                    .help = "the VM", .required = true } },
        .run = cmd_vm_ft_status,
    },
    {
        .path = "vm ft",
        .verb = "failover-test",
        .help = "Test the failover of a protected VM, as vSphere's Test Failover: the primary "
                "vmx is killed and the secondary takes over. Waits until it has, and says "
                "which host runs the VM.",
        .opts = { { .name = "name", .shortname = 'n', .type = OPT_STR, .metavar = "NAME",
                    .help = "the VM", .required = true } },
        .run = cmd_vm_ft_failover_test,
    },
    {
        .path = "vm snapshot",
        .verb = "create",
        .help = "Take a snapshot of a VM: its disks go on new copy-on-write delta layers and "
                "the present state is kept; with --memory, a running VM's memory too (the "
                "guest pauses for the copy). Works on running and powered-off VMs.",
        .opts = { { .name = "name", .shortname = 'n', .type = OPT_STR, .metavar = "NAME",
                    .help = "the VM", .required = true },
                  { .name = "snapshot", .type = OPT_STR, .metavar = "S",
                    .help = "the snapshot's name (default snapshot-ID)" },
                  { .name = "memory", .type = OPT_FLAG,
                    .help = "keep the running VM's memory, so a revert resumes it there" },
                  VMKCTL_TASK_OPTS },
        .run = cmd_vm_snapshot_create,
    },
    {
        .path = "vm snapshot",
        .verb = "list",
        .help = "List a VM's snapshots: id, name, parent, when, whether with memory, and which "
                "one the present state descends from.",
        .opts = { { .name = "name", .shortname = 'n', .type = OPT_STR, .metavar = "NAME",
                    .help = "the VM", .required = true } },
        .run = cmd_vm_snapshot_list,
    },
    {
        .path = "vm snapshot",
        .verb = "revert",
        .help = "Go back to a snapshot: the disks as they were then (what was written since "
                "is discarded); a snapshot with memory resumes the guest from that point, "
                "one without leaves the VM powered off. A running VM is powered off first.",
        .opts = { { .name = "name", .shortname = 'n', .type = OPT_STR, .metavar = "NAME",
                    .help = "the VM", .required = true },
                  { .name = "snapshot", .type = OPT_STR, .metavar = "S",
                    .help = "the snapshot (name or id)", .required = true },
                  { .name = "suspended", .type = OPT_FLAG,
                    .help = "with a memory snapshot: leave the VM suspended there" },
                  VMKCTL_TASK_OPTS },
        .run = cmd_vm_snapshot_revert,
    },
    {
        .path = "vm snapshot",
        .verb = "remove",
        .help = "Remove a snapshot: the VM stays as it is; its disk layer is consolidated "
                "into the one below where nothing else needs it (online for a running VM).",
        .opts = { { .name = "name", .shortname = 'n', .type = OPT_STR, .metavar = "NAME",
                    .help = "the VM", .required = true },
                  { .name = "snapshot", .type = OPT_STR, .metavar = "S",
                    .help = "the snapshot (name or id)", .required = true },
                  VMKCTL_TASK_OPTS },
        .run = cmd_vm_snapshot_remove,
    },
    {
        .path = "vm",
        .verb = "console",
        .help = "Show a VM's serial console output (its serial.log). The last lines, or from a byte offset; --follow keeps printing what the guest writes until Ctrl-C or the VM stops.",
        .opts = { { .name = "name", .shortname = 'n', .type = OPT_STR, .metavar = "NAME", .help = "the VM", .required = true },
                  { .name = "follow", .shortname = 'f', .type = OPT_FLAG, .help = "keep printing new output" },
                  { .name = "since", .type = OPT_INT, .metavar = "OFFSET", .min = 0, .max = 1099511627776LL, .help = "from this byte offset (next_offset of an earlier call) instead of the last lines" },
                  { .name = "lines", .type = OPT_INT, .metavar = "N", .min = 1, .max = 100000, .help = "how many of the last lines (default 20)" } },
        .run = cmd_vm_console,
    },
    {
        .path = "vm process",
        .verb = "list",
        .help = "List the vmx processes running VMs: world id, VM name, pid, .vmx file.",
        .run = cmd_vm_process_list,
    },
    {
        .path = "vm process",
        .verb = "kill",
        .help = "Stop a VM's vmx: soft (vmx powers the VM off cleanly), hard (SIGTERM), force (SIGKILL).",
        .opts = { { .name = "type", .shortname = 't', .type = OPT_STR, .metavar = "soft|hard|force", .help = "how to stop it", .required = true },
                  { .name = "world-id", .shortname = 'w', .type = OPT_INT, .metavar = "WORLD_ID", .min = 1, .max = 4194304, .help = "the world id from vm process list", .required = true } },
        .run = cmd_vm_process_kill,
    },
    {
        .path = "vm",
        .verb = "register",
        .help = "Register an existing VM from its .vmx file on a datastore.",
        .opts = { { .name = "path", .type = OPT_STR, .metavar = "DS:DIR/NAME.vmx",
                    .help = "DATASTORE:DIR/NAME.vmx, or an absolute path", .required = true } },
        .run = cmd_vm_register,
    },
    {
        .path = "vm",
        .verb = "unregister",
        .help = "Remove a VM from the host's inventory; its files stay on the datastore.",
        .opts = { { .name = "name", .shortname = 'n', .type = OPT_STR, .metavar = "NAME",
                    .help = "the VM", .required = true } },
        .run = cmd_vm_unregister,
    },
    {
        .path = "task",
        .verb = "list",
        .help = "List the host's tasks, oldest first: the running ones and the last 200 "
                "finished.",
        .run = cmd_task_list,
    },
    {
        .path = "task",
        .verb = "get",
        .help = "Show a task: state, progress, result or error, and its op-specific "
                "details. With --wait, follow it until it ends (a progress bar on a TTY) "
                "and exit as the operation did.",
        .opts =
            {
                {.name = "task-id",
                 .shortname = 't',
                 .type = OPT_STR,
                 .metavar = "ID",
                 .help = "the task (task-...; see task list)",
                 .required = true},
                {.name = "wait",
                 .type = OPT_FLAG,
                 .help = "wait until the task ends; Ctrl-C cancels it"},
                {.name = "wait-timeout",
                 .type = OPT_INT,
                 .metavar = "SECONDS",
                 .min = 1,
                 .max = 604800,
                 .help = "with --wait: stop waiting after SECONDS (exit 6; the task goes on)"},
            },
        .run = cmd_task_get,
    },
    {
        .path = "task",
        .verb = "cancel",
        .help = "Ask a running task to stop; it ends as cancelled at its next safe point "
                "(see task get).",
        .opts = { { .name = "task-id", .shortname = 't', .type = OPT_STR, .metavar = "ID",
                    .help = "the task (task-...; see task list)", .required = true } },
        .run = cmd_task_cancel,
    },
};

/* Global options (CLI.md): before the namespace words. */
static const struct vmkctl_cmd globals = {
    .path = "vmkctl",
    .verb = "",
    .help = "Drive a vmk host (hostd) from the command line, esxcli style.",
    .opts =
        {
            {.name = "server",
             .shortname = 's',
             .type = OPT_STR,
             .metavar = "HOST[:PORT]",
             .help = "hostd to talk to (env VMK_SERVER; default localhost:4443); with --lab "
                     "a lab host name"},
            {.name = "username",
             .shortname = 'u',
             .type = OPT_STR,
             .metavar = "USER",
             .help = "account (env VMK_USERNAME; default root)"},
            {.name = "password",
             .shortname = 'p',
             .type = OPT_STR,
             .metavar = "PASSWORD",
             .help = "password (env VMK_PASSWORD); prompted on a TTY when missing"},
            {.name = "password-file",
             .type = OPT_STR,
             .metavar = "FILE",
             .help = "read the password from the first line of FILE"},
            {.name = "thumbprint",
             .type = OPT_STR,
             .metavar = "SHA256",
             .help = "pin the host certificate (env VMK_THUMBPRINT); remembered in "
                     "~/.vmk/known_hosts"},
            {.name = "sessionfile",
             .type = OPT_STR,
             .metavar = "FILE",
             .help = "save and reuse a session token instead of logging in every time"},
            {.name = "formatter",
             .type = OPT_ENUM,
             .metavar = "FORMAT",
             .choices = "table|json|csv|keyvalue|xml",
             .help = "output format (default table)"},
            {.name = "lab",
             .type = OPT_STR,
             .metavar = "DIR",
             .help = "resolve host names, thumbprints and credentials through a lab "
                     "(env VMK_LAB)"},
            {.name = "timeout",
             .type = OPT_INT,
             .metavar = "SECONDS",
             .min = 1,
             .max = 86400,
             .help = "give up on an unanswered host after SECONDS (default 30)"},
            {.name = "help", .shortname = 'h', .type = OPT_FLAG, .help = "show help"},
            {.name = "version", .type = OPT_FLAG, .help = "show vmkctl's version"},
            {.name = "generate-completion",
             .type = OPT_ENUM,
             .metavar = "SHELL",
             .choices = "bash",
             .help = "print a shell completion script"},
        },
};

const struct vmkctl_cmd *vmkctl_globals(void)
{
	return &globals;
}

const struct vmkctl_cmd *vmkctl_commands(size_t *n)
{
	*n = ARRAY_SIZE(commands);
	return commands;
}

const struct vmkctl_ns *vmkctl_namespaces(size_t *n)
{
	*n = ARRAY_SIZE(namespaces);
	return namespaces;
}

bool vmkctl_is_namespace(const char *path)
{
	for (size_t i = 0; i < ARRAY_SIZE(namespaces); i++) {
		if (strcmp(namespaces[i].path, path) == 0)
			return true;
	}
	return false;
}

const struct vmkctl_cmd *vmkctl_find(int nwords, char **words, int *used)
{
	char path[256] = "";

	*used = 0;
	for (int i = 0; i < nwords; i++) {
		/* words[0..i-1] is a namespace; is words[i] a verb of it? */
		if (i > 0) {
			for (size_t c = 0; c < ARRAY_SIZE(commands); c++) {
				if (strcmp(commands[c].path, path) == 0 &&
				    strcmp(commands[c].verb, words[i]) == 0) {
					*used = i + 1;
					return &commands[c];
				}
			}
		}
		char next[256];
		int n = snprintf(next, sizeof(next), "%s%s%s", path, i ? " " : "", words[i]);
		if (n < 0 || (size_t)n >= sizeof(next) || !vmkctl_is_namespace(next))
			break;
		memcpy(path, next, (size_t)n + 1);
		*used = i + 1;
	}
	return NULL;
}

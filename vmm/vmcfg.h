/* A VM's configuration: <datastore>/<name>/<name>.vmx (libconfig). */
#ifndef VMM_VMCFG_H
#define VMM_VMCFG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define VMCFG_MAX_DISKS 8
#define VMCFG_MAX_NICS  4
#define VMCFG_MIN_MIB   16
#define VMCFG_MAX_MIB   (64 * 1024)
#define VMCFG_MAX_VCPUS 64

struct vmcfg_disk {
	char *path; /* absolute, or relative to the VM directory */
	bool readonly;
};

struct vmcfg_nic {
	char *portgroup;
	char *tap; /* host tap device name ("" until networking attaches one) */
	uint8_t mac[6];
};

struct vmcfg {
	char *path; /* the .vmx file */
	char *dir;  /* its directory */
	char *name;
	char *uuid; /* 36-character RFC 4122 text */
	uint32_t memory_mib;
	uint32_t vcpus;
	char *kernel; /* PVH ELF or bzImage; relative paths are in dir */
	char *initrd; /* optional */
	char *cmdline;
	char *cpu_model;  /* "host" or a named model */
	char *serial_log; /* default: <dir>/serial.log */
	struct vmcfg_disk disks[VMCFG_MAX_DISKS];
	unsigned ndisks;
	struct vmcfg_nic nics[VMCFG_MAX_NICS];
	unsigned nnics;
};

/* All-or-nothing: errors name file:line and the fix. Relative paths are
 * resolved against the file's directory. */
int vmcfg_load(const char *path, struct vmcfg *c, char *err, size_t errlen);
void vmcfg_free(struct vmcfg *c);

/* The .vmx text of a clone: text with the VM's name and uuid replaced, and
 * what belongs to the original alone dropped (NIC MACs, which then follow
 * the new uuid; taps; an explicit serial log). *out is malloc'ed. 0, or
 * -EINVAL with err when text does not parse. */
int vmcfg_clone_text(const char *text, const char *name, const char *uuid, char **out,
                     size_t *outlen, char *err, size_t errlen);

/* The .vmx text with disk i's path set to paths[i] (n must be its number of
 * disks); everything else kept. *out is malloc'ed. 0 or -errno with err. */
int vmcfg_set_disk_paths(const char *text, const char *const *paths, unsigned n, char **out,
                         size_t *outlen, char *err, size_t errlen);

/* "00:50:56:xx:xx:xx" from the uuid, as ESXi derives VM MACs from its OUI. */
void vmcfg_mac_from_uuid(const char *uuid, unsigned index, uint8_t mac[6]);

#endif

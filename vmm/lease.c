#include "lease.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

static int lease_init(struct vmx_lease *l, const char *dir, const char *host, const char *addr,
                      char *err, size_t errlen)
{
	memset(l, 0, sizeof(*l));
	pthread_mutex_init(&l->m, NULL);
	pthread_cond_init(&l->cv, NULL);
	return vmlock_init(&l->lk, dir, host, addr, (int)getpid(), err, errlen);
}

int vmx_lease_seize(struct vmx_lease *l, const char *dir, const char *host, const char *addr,
                    char *err, size_t errlen)
{
	int ret = lease_init(l, dir, host, addr, err, errlen);

	return ret < 0 ? ret : vmlock_seize(&l->lk, NULL, err, errlen);
}

int vmx_lease_take(struct vmx_lease *l, const char *dir, const char *host, const char *addr,
                   char *err, size_t errlen)
{
	struct vmlock_watch w = { 0 };
	struct vmlock_owner first = { 0 }, h;
	bool seen = false;
	int ret;

	if ((ret = lease_init(l, dir, host, addr, err, errlen)) < 0)
		return ret;
	uint64_t deadline = util_now_ms() + l->lk.lease_ms + l->lk.renew_ms;
	for (;;) {
		memset(&h, 0, sizeof(h));
		ret = vmlock_acquire(&l->lk, &w, &h, err, errlen);
		if (ret != -EBUSY)
			return ret;
		bool live =
		        h.locked ||
		        (seen && (h.counter != first.counter || strcmp(h.token, first.token) != 0));
		if (!seen) {
			first = h;
			seen = true;
		}
		if (live || util_now_ms() > deadline) {
			snprintf(
			        err, errlen,
			        "the VM is running on host %s (%s, vmx pid %d): its datastore lock "
			        "%s is held; power it off there first",
			        h.host, h.addr, h.pid, l->lk.path);
			return -EBUSY;
		}
		usleep(250 * 1000);
	}
}

static void *renew_main(void *arg)
{
	struct vmx_lease *l = arg;
	char err[400];

	pthread_mutex_lock(&l->m);
	while (!l->stop) {
		struct timespec ts;
		util_deadline(&ts, l->lk.renew_ms);
		pthread_cond_timedwait(&l->cv, &l->m, &ts);
		if (l->stop)
			break;
		int ret = vmlock_renew(&l->lk, err, sizeof(err));
		if (ret == -ESTALE || ret == -ETIMEDOUT) {
			char why[500];
			snprintf(why, sizeof(why), "lost the datastore lock: %s", err);
			log_error("%s: stopping the VM", why);
			vmm_vm_stop(l->vm, VM_CRASHED, why);
			break;
		}
		if (ret < 0)
			log_warn("renewing the datastore lock: %s (retrying)", err);
	}
	pthread_mutex_unlock(&l->m);
	return NULL;
}

int vmx_lease_start(struct vmx_lease *l, struct vmm_vm *vm)
{
	l->vm = vm;
	if (pthread_create(&l->thread, NULL, renew_main, l) != 0)
		return -EAGAIN;
	l->running = true;
	return 0;
}

void vmx_lease_end(struct vmx_lease *l)
{
	char err[400];

	if (l->running) {
		pthread_mutex_lock(&l->m);
		l->stop = true;
		pthread_cond_broadcast(&l->cv);
		pthread_mutex_unlock(&l->m);
		pthread_join(l->thread, NULL);
		l->running = false;
	}
	if (l->lk.held && vmlock_release(&l->lk, err, sizeof(err)) < 0)
		log_warn("releasing the datastore lock: %s", err);
}

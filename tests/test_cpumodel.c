/* CPU models: building from KVM's leaves, filtering, the missing-feature
 * check a migration destination makes, and the CPUM record. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "vmm/cpumodel.h"

/* A host with SSE4.2 and AVX2 but no AVX-512. */
static size_t host_leaves(struct cpuid_leaf *l)
{
	memset(l, 0, 4 * sizeof(*l));
	l[0] = (struct cpuid_leaf){ 1,
		                    0,
		                    0,
		                    0,
		                    (1u << 0) | (1u << 9) | (1u << 12) | (1u << 13) | (1u << 19) |
		                            (1u << 20) | (1u << 22) | (1u << 23) | (1u << 26) |
		                            (1u << 28) | (1u << 29),
		                    0x078bfbffu };
	l[1] = (struct cpuid_leaf){ 7, 0, 0, (1u << 3) | (1u << 5) | (1u << 8), 0, 0 };
	l[2] = (struct cpuid_leaf){
		0x80000001, 0, 0, 0, (1u << 0) | (1u << 5), (1u << 11) | (1u << 20) | (1u << 29)
	};
	return 3;
}

static void test_named_models(void **state)
{
	struct cpuid_leaf l[4];
	struct vmm_cpumodel m;
	char err[600];
	size_t n = host_leaves(l);

	(void)state;
	assert_int_equal(vmm_cpumodel_build(&m, "x86-64-v2", "AuthenticAMD", 2000000, l, n, err,
	                                    sizeof(err)),
	                 0);
	assert_int_equal(vmm_cpumodel_build(&m, "x86-64-v3", "AuthenticAMD", 2000000, l, n, err,
	                                    sizeof(err)),
	                 0);
	assert_int_equal(vmm_cpumodel_build(&m, "x86-64-v4", "AuthenticAMD", 2000000, l, n, err,
	                                    sizeof(err)),
	                 -ENOTSUP);
	assert_non_null(strstr(err, "avx512f"));
	assert_non_null(strstr(err, "avx512vl"));
	assert_int_equal(vmm_cpumodel_build(&m, "pentium", "x", 0, l, n, err, sizeof(err)),
	                 -EINVAL);
	assert_non_null(strstr(err, "unknown CPU model"));
}

static void test_host_model_and_missing(void **state)
{
	struct cpuid_leaf l[4], other[4];
	struct vmm_cpumodel m;
	char err[600], miss[600];
	size_t n = host_leaves(l);

	(void)state;
	assert_int_equal(vmm_cpumodel_build(&m, "host", "AuthenticAMD", 1, l, n, err, sizeof(err)),
	                 0);
	assert_int_equal(vmm_cpumodel_missing(&m, l, n, miss, sizeof(miss)), 0);
	/* a destination without AVX2 and BMI2 */
	memcpy(other, l, sizeof(l));
	other[1].ebx &= ~((1u << 5) | (1u << 8));
	assert_int_equal(vmm_cpumodel_missing(&m, other, n, miss, sizeof(miss)), 2);
	assert_string_equal(miss, "avx2, bmi2");
}

static void test_filter(void **state)
{
	struct cpuid_leaf l[4];
	struct vmm_cpumodel m;
	char err[600];
	size_t n = host_leaves(l);

	(void)state;
	assert_int_equal(
	        vmm_cpumodel_build(&m, "x86-64-v2", "AuthenticAMD", 1, l, n, err, sizeof(err)), 0);
	vmm_cpumodel_filter(&m, l, n);
	assert_int_equal(l[1].ebx & (1u << 5), 0);      /* avx2 hidden */
	assert_int_equal(l[0].ecx & (1u << 28), 0);     /* avx hidden */
	assert_int_not_equal(l[0].ecx & (1u << 20), 0); /* sse4_2 kept */
}

static void test_record(void **state)
{
	struct cpuid_leaf l[4];
	struct vmm_cpumodel m, r;
	struct sbuf b;
	struct rbuf rb;
	char err[600];
	size_t n = host_leaves(l);

	(void)state;
	assert_int_equal(
	        vmm_cpumodel_build(&m, "host", "AuthenticAMD", 2096000, l, n, err, sizeof(err)), 0);
	sbuf_init(&b);
	vmm_cpumodel_save(&m, &b);
	assert_int_equal(b.err, 0);
	rbuf_init(&rb, b.data, b.len);
	assert_int_equal(vmm_cpumodel_restore(&r, &rb), 0);
	assert_string_equal(r.name, "host");
	assert_string_equal(r.vendor, "AuthenticAMD");
	assert_int_equal(r.tsc_khz, 2096000);
	assert_int_equal(r.nfeatures, m.nfeatures);
	for (size_t i = 0; i < m.nfeatures; i++)
		assert_string_equal(r.features[i], m.features[i]);
	/* every truncation is refused */
	for (size_t len = 0; len < b.len; len++) {
		rbuf_init(&rb, b.data, len);
		assert_int_not_equal(vmm_cpumodel_restore(&r, &rb), 0);
	}
	/* an unknown feature name is refused */
	size_t at = b.len - 3; /* inside the last name */
	b.data[at] = 'Z';
	rbuf_init(&rb, b.data, b.len);
	assert_int_equal(vmm_cpumodel_restore(&r, &rb), -EBADMSG);
	sbuf_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_named_models),
		cmocka_unit_test(test_host_model_and_missing),
		cmocka_unit_test(test_filter),
		cmocka_unit_test(test_record),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

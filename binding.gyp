{
  # The native kernels. The addon itself is compiled for the baseline ISA (portable build, no -march=native);
  # the AVX2 and AVX-512 kernels are separate static libraries compiled for those targets and chosen at run
  # time with cpuid (native/addon.cc). -ffp-contract=off everywhere: a multiply-add is fused only where the
  # code says so, which keeps results identical across compilers and M (see native/kernels_impl.h).
  'target_defaults': {
    'cflags': ['-O3', '-fPIC', '-ffp-contract=off', '-fno-math-errno', '-Wall', '-Wno-unused-function'],
    'cflags_cc': ['-std=gnu++17'],
    'xcode_settings': {
      'OTHER_CFLAGS': ['-O3', '-ffp-contract=off', '-fno-math-errno'],
      'CLANG_CXX_LANGUAGE_STANDARD': 'gnu++17',
    },
    'conditions': [
      ['target_arch=="x64" or target_arch=="ia32"', { 'defines': ['RG_X86'] }],
    ],
  },
  'targets': [
    {
      'target_name': 'rg_scalar',
      'type': 'static_library',
      'sources': ['native/kernels_scalar.cc'],
    },
    {
      'target_name': 'recyclegpt_native',
      # the N-API glue (plain C API), the thread pool and the kernel helpers shared by every instruction set
      'sources': ['native/addon.cc', 'native/pool.cc', 'native/kernels_common.cc', 'native/probe.cc'],
      'defines': ['NAPI_VERSION=8'],
      'cflags!': ['-fno-exceptions'],
      'cflags_cc!': ['-fno-exceptions'],
      'xcode_settings': { 'GCC_ENABLE_CPP_EXCEPTIONS': 'YES' },
      'msvs_settings': { 'VCCLCompilerTool': { 'ExceptionHandling': 1 } },
      'dependencies': ['rg_scalar'],
      'conditions': [
        ['target_arch=="x64" or target_arch=="ia32"', { 'dependencies': ['rg_avx2', 'rg_avx512'] }],
      ],
    },
  ],
  'conditions': [
    ['target_arch=="x64" or target_arch=="ia32"', {
      'targets': [
        {
          'target_name': 'rg_avx2',
          'type': 'static_library',
          'sources': ['native/kernels_avx2.cc'],
          'cflags': ['-mavx2', '-mfma', '-mf16c'],
          'xcode_settings': { 'OTHER_CFLAGS': ['-mavx2', '-mfma', '-mf16c'] },
        },
        {
          'target_name': 'rg_avx512',
          'type': 'static_library',
          'sources': ['native/kernels_avx512.cc'],
          'cflags': ['-mavx512f', '-mavx512dq', '-mavx512bw', '-mavx512vl', '-mavx2', '-mfma', '-mf16c',
                     '-mprefer-vector-width=512'],
          'xcode_settings': {
            'OTHER_CFLAGS': ['-mavx512f', '-mavx512dq', '-mavx512bw', '-mavx512vl', '-mavx2', '-mfma', '-mf16c'],
          },
        },
      ],
    }],
  ],
}

// Compiles Metal Shading Language kernels as C++ on the CPU, so tests can check the values they
// compute without an Apple GPU: address-space qualifiers vanish, Metal's types and math map to
// C++ ones, and akg_drive runs a kernel once per thread position.
#include <cmath>
#include <cstdint>
#include <cstring>
#include <utility>
#define AKG_SHIM 1
#define kernel
#define device
#define thread
#define INFINITY_F INFINITY
typedef unsigned int uint;
typedef unsigned char uchar;
typedef _Float16 half;
struct bfloat {
  uint16_t bits;
  bfloat() = default;
  bfloat(float f) {
    uint32_t u; std::memcpy(&u, &f, 4);
    bits = (f != f) ? uint16_t(0x7fc0) : uint16_t((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
  }
  operator float() const { uint32_t u = uint32_t(bits) << 16; float f; std::memcpy(&f, &u, 4); return f; }
};
namespace metal {
using std::exp; using std::exp2; using std::log; using std::log2; using std::sqrt; using std::sin; using std::cos;
using std::tan; using std::tanh; using std::asin; using std::acos; using std::atan; using std::sinh; using std::cosh;
using std::asinh; using std::acosh; using std::atanh; using std::floor; using std::ceil; using std::trunc;
using std::rint; using std::fmod; using std::pow; using std::fabs; using std::atan2;
}
template <typename... P, size_t... I>
void akg_call(void (*k)(uint, P...), uint t, void** p, std::index_sequence<I...>) { k(t, ((P)p[I])...); }
template <typename... P>
void akg_drive(void (*k)(uint, P...), void** p, uint64_t n) {
  for (uint64_t t = 0; t < n; ++t) akg_call(k, (uint)t, p, std::index_sequence_for<P...>{});
}

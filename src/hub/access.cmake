# Sources of the hub-access part of the hub (JWT verification and signing, topic selectors),
# owned by hub-access; src/hub/CMakeLists.txt include()s this file and adds them to the hub module:
#   sse_add_module(NAME hub SOURCES ... ${SSE_HUB_ACCESS_SOURCES} LIBS ... ${SSE_HUB_ACCESS_LIBS})
# jansson reads the JWT JSON; libcrypto (OpenSSL) verifies every signature (auth.c says why not
# libjwt 1.10: it refuses typ "at+jwt" and compares HMACs with strcmp) and signs the tokens that
# `ssehub token` mints (jws.c).
set(SSE_HUB_ACCESS_SOURCES auth.c jws.c jwks.c selector.c selector_template.c selector_urlpattern.c
  selector_cache.c)
if(NOT TARGET PkgConfig::SSE_CRYPTO)
  pkg_check_modules(SSE_CRYPTO REQUIRED IMPORTED_TARGET GLOBAL libcrypto)
endif()
set(SSE_HUB_ACCESS_LIBS PkgConfig::JANSSON PkgConfig::SSE_CRYPTO)

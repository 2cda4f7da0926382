#pragma once
// A minimal blocking HTTP/1.1 client for end-to-end tests (Boost.Beast).

#include <map>
#include <string>

namespace grassroots::testing {

struct HttpResponse {
  int status = 0;
  std::string body;
  std::map<std::string, std::string> headers;  // lower-case names
};

HttpResponse Http(const std::string& method, int port, const std::string& target, const std::string& body = "",
                  const std::string& content_type = "application/json");

}  // namespace grassroots::testing

// Starts Swagger UI on the OpenAPI document the hub serves. A file rather than an inline script,
// so the page's Content-Security-Policy allows scripts from the hub itself and nothing else.
window.addEventListener("DOMContentLoaded", function () {
  var root = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: root.dataset.specUrl,
    domNode: root,
    deepLinking: true,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
    validatorUrl: null, // the default sends the document to an online validator
  });
});

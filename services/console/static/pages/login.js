/* 登录：用户名和密码换取令牌，令牌只保存在本标签页（sessionStorage）。 */
Console.page("login", async ({ query, root }) => {
  const { $, login, homeOf, formError, busy, notice } = Console;
  const form = $(".login-form");
  if (query.get("expired")) notice("登录已过期，请重新登录。", "warn");
  const who = Console.me();
  if (who && !query.get("expired")) {
    location.replace(homeOf(who.role));
    return;
  }
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const button = form.querySelector("button[type=submit]");
    formError(form, null);
    busy(button, true, "正在登录……");
    try {
      const me = await login(form.elements.username.value.trim(), form.elements.password.value);
      const next = query.get("next") || "";
      // only our own pages: never an absolute or protocol-relative address
      const safe = next.startsWith(`${root}/`) && !next.startsWith("//") && !next.startsWith(`${root}/login`);
      location.replace(safe ? next : homeOf(me.role));
    } catch (error) {
      busy(button, false);
      formError(form, error);
    }
  });
});
